//! Command lines: Haraka's verb split and the rfc1869 parser of MAIL / RCPT arguments.
//!
//! * The line (without its CR LF) is split as `^([^ ]*)( +(.*))?$`: the verb is
//!   everything before the first space (a TAB does not separate), the argument is
//!   what follows one or more spaces. Verbs are case-insensitive.
//! * MAIL / RCPT arguments follow H300 `rfc1869.js`: `FROM:` / `TO:` found
//!   case-insensitively and removed with the spaces after it (none with
//!   `strict_rfc1869`), ESMTP parameters peeled off from the end, missing angle
//!   brackets accepted, an empty MAIL argument is the null sender, an RCPT without
//!   `@` only as `<postmaster>` or `<abuse>`.

use crate::address::{Address, AddressError};

/// ESMTP parameters: upper-cased keyword and optional value, in order, a repeated
/// keyword keeping its first position and its last value.
pub type Params = Vec<(String, Option<String>)>;

/// A command line, by verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(String),
    Rcpt(String),
    Data(String),
    Rset(String),
    Noop(String),
    Vrfy(String),
    Help(String),
    Quit(String),
    /// HAProxy's `PROXY` line reaching the session (never allowed there).
    Proxy(String),
    /// Any other verb: the verb as sent and the rest of the line.
    Unknown {
        verb: String,
        rest: String,
    },
    /// The line does not match Haraka's command pattern (a line break inside the
    /// argument); Haraka passes the whole line to `unrecognized_command`.
    Unparsable(String),
}

/// JavaScript's `\s`: ASCII whitespace, NBSP, BOM, the Unicode space separators
/// and the line terminators U+2028/U+2029 (but not U+0085). Haraka's command
/// patterns and haraka-config's readers both use it.
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// A character JavaScript's `.` does not match.
fn is_js_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// Haraka's `^([^ ]*)( +(.*))?$`: `(verb, rest)`, or `None` when it does not match.
pub fn split_verb(line: &str) -> Option<(&str, &str)> {
    match line.find(' ') {
        None => Some((line, "")),
        Some(i) => {
            let rest = line[i..].trim_start_matches(' ');
            if rest.chars().any(is_js_line_terminator) {
                None
            } else {
                Some((&line[..i], rest))
            }
        }
    }
}

/// Split and classify a command line (without its line ending).
pub fn parse_command(line: &str) -> Command {
    let Some((verb, rest)) = split_verb(line) else {
        return Command::Unparsable(line.to_owned());
    };
    let rest_s = rest.to_owned();
    match verb.to_ascii_lowercase().as_str() {
        "helo" => Command::Helo(rest_s),
        "ehlo" => Command::Ehlo(rest_s),
        "mail" => Command::Mail(rest_s),
        "rcpt" => Command::Rcpt(rest_s),
        "data" => Command::Data(rest_s),
        "rset" => Command::Rset(rest_s),
        "noop" => Command::Noop(rest_s),
        "vrfy" => Command::Vrfy(rest_s),
        "help" => Command::Help(rest_s),
        "quit" => Command::Quit(rest_s),
        "proxy" => Command::Proxy(rest_s),
        _ => Command::Unknown {
            verb: verb.to_owned(),
            rest: rest_s,
        },
    }
}

/// The host of HELO/EHLO: the first space-separated word (`None` when empty).
pub fn hello_host(rest: &str) -> Option<&str> {
    rest.split(' ').next().filter(|h| !h.is_empty())
}

/// MAIL or RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Mail,
    Rcpt,
}

impl PathKind {
    fn name(self) -> &'static str {
        match self {
            PathKind::Mail => "mail",
            PathKind::Rcpt => "rcpt",
        }
    }
}

/// Why a MAIL / RCPT argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// An rfc1869 error (`Syntax error in parameters`, ...).
    #[error("{0}")]
    Syntax(String),
    /// The path is not an RFC 5321 address.
    #[error("{0}")]
    Address(#[from] AddressError),
}

impl ArgError {
    /// The 501 reply lines: `Command parsing failed` / `Error: <reason>`.
    pub fn reply_lines(&self) -> Vec<String> {
        vec![
            "Command parsing failed".to_owned(),
            format!("Error: {self}"),
        ]
    }
}

/// MAIL FROM arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailArgs {
    /// `None` is the null sender.
    pub from: Option<Address>,
    pub params: Params,
}

/// RCPT TO arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptArgs {
    pub to: Address,
    pub params: Params,
}

/// Parse the argument of MAIL (`FROM:<a@b> SIZE=10`).
pub fn parse_mail_args(rest: &str, strict: bool) -> Result<MailArgs, ArgError> {
    let (path, raw) = rfc1869(PathKind::Mail, rest, strict).map_err(ArgError::Syntax)?;
    let from = Address::parse_reverse_path(&path)?;
    Ok(MailArgs {
        from,
        params: to_params(&raw),
    })
}

/// Parse the argument of RCPT (`TO:<a@b> NOTIFY=NEVER`).
pub fn parse_rcpt_args(rest: &str, strict: bool) -> Result<RcptArgs, ArgError> {
    let (path, raw) = rfc1869(PathKind::Rcpt, rest, strict).map_err(ArgError::Syntax)?;
    let to = Address::parse(&path)?;
    Ok(RcptArgs {
        to,
        params: to_params(&raw),
    })
}

/// H300 `rfc1869.parse`: the path (possibly bracketed now) and the raw parameters.
pub fn rfc1869(kind: PathKind, line: &str, strict: bool) -> Result<(String, Vec<String>), String> {
    let mut line = line.trim_end_matches(is_js_space).to_owned();
    let prefix = match kind {
        PathKind::Mail => "from:",
        PathKind::Rcpt => "to:",
    };
    if let Some(pos) = find_ascii_ci(&line, prefix) {
        let mut end = pos + prefix.len();
        if !strict {
            end += line[end..].len() - line[end..].trim_start_matches(is_js_space).len();
        }
        line.replace_range(pos..end, "");
    }
    let mut params = Vec::new();
    while let Some((cut, token)) = chew(&line) {
        params.push(token.to_owned());
        line.truncate(cut);
    }
    params.reverse();
    if !line.is_empty() {
        if at_then_space(&line) {
            return Err(format!("Syntax error in parameters (\"{line}\")"));
        }
        params.insert(0, line);
    }
    let mut path = if params.is_empty() {
        String::new()
    } else {
        params.remove(0)
    };
    if strict && !is_bracketed(&path) {
        return Err(format!("Invalid format of {} command: {path}", kind.name()));
    }
    match kind {
        PathKind::Mail => {
            if path.is_empty() {
                return Ok(("<>".to_owned(), Vec::new()));
            }
            if at_then_space(&path) {
                return Err("Syntax error in parameters".to_owned());
            }
        }
        PathKind::Rcpt => {
            if path.chars().any(is_js_space) {
                return Err("Syntax error in parameters".to_owned());
            }
            if path.contains('@') {
                if !is_bracketed(&path) {
                    path = format!("<{path}>");
                }
            } else {
                let lower = path.to_ascii_lowercase();
                if lower != "<postmaster>" && lower != "<abuse>" {
                    return Err(format!("Syntax error in address: {path}"));
                }
            }
        }
    }
    Ok((path, params))
}

/// `KEY[=VALUE]` strings to [`Params`] (keys upper-cased, a repeated key keeps its
/// first position and its last value).
pub fn to_params(raw: &[String]) -> Params {
    let mut out: Params = Vec::new();
    for p in raw {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned()).filter(|v| !v.is_empty())),
            None => (p.as_str(), None),
        };
        if k.is_empty() {
            continue;
        }
        let key = k.to_ascii_uppercase();
        match out.iter_mut().find(|(ek, _)| *ek == key) {
            Some(slot) => slot.1 = v,
            None => out.push((key, v)),
        }
    }
    out
}

/// The value of `key` in `params`.
pub fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_deref())
}

/// A parameter by keyword: `Some(value)` when present (`Some(None)` without `=`).
pub fn param_entry<'a>(params: &'a Params, key: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_deref())
}

/// `SIZE=` as JavaScript's `Number()` reads it (`None` for NaN).
pub fn size_param(params: &Params) -> Option<f64> {
    param(params, "SIZE").and_then(js_number)
}

fn js_number(s: &str) -> Option<f64> {
    let t = s.trim_matches(is_js_space);
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return u64::from_str_radix(digits, radix).ok().map(|n| n as f64);
        }
    }
    match t {
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        "" => return Some(0.0),
        _ => {}
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    (0..=h.len().checked_sub(n.len())?).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// `/^<.*>$/` (`.` stops at line terminators).
fn is_bracketed(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with('<')
        && s.ends_with('>')
        && !s[1..s.len() - 1].chars().any(is_js_line_terminator)
}

/// `/@.*\s/`: whitespace somewhere after an `@`.
fn at_then_space(s: &str) -> bool {
    match s.find('@') {
        Some(i) => s[i..].chars().any(is_js_space),
        None => false,
    }
}

/// `\s+([A-Za-z0-9][A-Za-z0-9-]*(?:=[^= \x00-\x1f]+)?)$`: the leftmost match, as
/// `(where the line is cut, the parameter)`.
fn chew(line: &str) -> Option<(usize, &str)> {
    let mut prev_space = false;
    for (i, c) in line.char_indices() {
        let space = is_js_space(c);
        if space && !prev_space {
            let token = line[i..].trim_start_matches(is_js_space);
            if is_param(token) {
                return Some((i, token));
            }
        }
        prev_space = space;
    }
    None
}

fn is_param(token: &str) -> bool {
    let mut chars = token.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rest = chars.as_str();
    let kw_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    let after = &rest[kw_end..];
    if after.is_empty() {
        return true;
    }
    match after.strip_prefix('=') {
        Some(value) => {
            !value.is_empty() && value.chars().all(|c| c != '=' && c != ' ' && c >= '\u{20}')
        }
        None => false,
    }
}
