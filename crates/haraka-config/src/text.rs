//! Text functions matching JavaScript's definitions (haraka-config is JavaScript).

pub(crate) use haraka_smtp::command::is_js_space;

/// JavaScript's `String.prototype.trim`.
pub(crate) fn trim_js(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// Split on `\r\n`, `\r` or `\n` (JavaScript `split(/\r\n|\r|\n/)`): `"a\n"` gives
/// `["a", ""]`, `""` gives `[""]`.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Decode file bytes as Node's `readFileSync(…, 'UTF-8')` does: invalid sequences
/// become U+FFFD. Returns whether the input was valid UTF-8.
pub(crate) fn decode(bytes: &[u8]) -> (String, bool) {
    match String::from_utf8(bytes.to_vec()) {
        Ok(s) => (s, true),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn split_like_javascript() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[""]),
            ("a", &["a"]),
            ("a\n", &["a", ""]),
            ("a\r\nb\rc\nd", &["a", "b", "c", "d"]),
            ("a\r\r\nb", &["a", "", "b"]),
            ("\n\n", &["", "", ""]),
        ];
        for (input, want) in cases {
            let got: Vec<&str> = split_lines(input).collect();
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    #[test]
    fn js_trim() {
        assert_eq!(trim_js("\u{FEFF} a \u{A0}"), "a");
        assert_eq!(trim_js("\u{85}a"), "\u{85}a");
    }
}
