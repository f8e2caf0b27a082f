//! Matching an expected line with placeholders against an actual line.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    Uuid(usize),
    Tuuid,
    Date,
    Host,
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let placeholder = [
            ("<uuid>", Tok::Uuid(36)),
            ("<tuuid>", Tok::Tuuid),
            ("<date>", Tok::Date),
            ("<host>", Tok::Host),
        ]
        .into_iter()
        .find(|(p, _)| rest.starts_with(p));
        if let Some((p, tok)) = placeholder {
            push_lit(&mut out, &mut lit);
            out.push(tok);
            rest = &rest[p.len()..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<uuid:")
            && let Some(end) = after.find('>')
            && let Ok(n) = after[..end].parse::<usize>()
        {
            push_lit(&mut out, &mut lit);
            out.push(Tok::Uuid(n));
            rest = &after[end + 1..];
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            lit.push(c);
        }
        rest = chars.as_str();
    }
    push_lit(&mut out, &mut lit);
    out
}

fn push_lit(out: &mut Vec<Tok>, lit: &mut String) {
    if !lit.is_empty() {
        out.push(Tok::Lit(std::mem::take(lit)));
    }
}

fn is_uuid_char(c: char) -> bool {
    c.is_ascii_digit() || ('A'..='F').contains(&c) || c == '-'
}

/// Lengths of `s` prefixes that a placeholder can take.
fn candidates(tok: &Tok, s: &str) -> Vec<usize> {
    let prefix_len = |n: usize, ok: &dyn Fn(char) -> bool| -> Option<usize> {
        let taken: Vec<char> = s.chars().take(n).collect();
        (taken.len() == n && taken.iter().all(|&c| ok(c)))
            .then(|| taken.iter().map(|c| c.len_utf8()).sum())
    };
    match tok {
        Tok::Lit(l) => {
            if s.starts_with(l.as_str()) {
                vec![l.len()]
            } else {
                vec![]
            }
        }
        Tok::Uuid(n) => prefix_len(*n, &is_uuid_char).into_iter().collect(),
        Tok::Tuuid => {
            let Some(base) = prefix_len(36, &is_uuid_char) else {
                return vec![];
            };
            let Some(after) = s[base..].strip_prefix('.') else {
                return vec![];
            };
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            (1..=digits).rev().map(|d| base + 1 + d).collect()
        }
        Tok::Date => prefix_len(31, &|c| c.is_ascii_alphanumeric() || " ,:+-".contains(c))
            .into_iter()
            .collect(),
        Tok::Host => {
            let n = s
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .count();
            (1..=n).rev().collect()
        }
    }
}

fn match_from(toks: &[Tok], s: &str) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((t, rest)) => candidates(t, s)
            .into_iter()
            .any(|n| match_from(rest, &s[n..])),
    }
}

/// Whether `actual` is what `pattern` describes.
pub fn matches(pattern: &str, actual: &str) -> bool {
    match_from(&tokens(pattern), actual)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn placeholders() {
        let u = "CE8F089B-CD9D-4C31-8C7A-C9F0E0A61ED7";
        assert!(matches("250 ok (<tuuid>)", &format!("250 ok ({u}.12)")));
        assert!(matches("220 x (<uuid>)", &format!("220 x ({u})")));
        assert!(matches("550 [<uuid:6>@<host>] no", "550 [CE8F08@vm] no"));
        assert!(matches("\t<date>", "\tThu, 26 Nov 2026 15:51:23 +0000"));
        assert!(!matches("250 a", "250 b"));
        assert!(!matches("250 <uuid>", "250 short"));
    }
}
