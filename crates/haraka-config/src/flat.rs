//! Flat files: `list`, `value` and `data` (haraka-config `lib/readers/flat.js`).
//!
//! `list`/`value`: lines split on CRLF, CR or LF; blank lines and lines whose first
//! non-blank character is `#` or `;` are dropped; the rest are trimmed; no inline
//! comments. `value` is the first remaining line. `data` is every line, untrimmed,
//! with the empty line after a final newline dropped.

use crate::text::{split_lines, trim_js};

/// One kept line of a list file: 1-based line number and trimmed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatLine {
    pub line: usize,
    pub text: String,
}

/// The kept lines of a `list` (or `value`) file.
pub fn parse_list(text: &str) -> Vec<FlatLine> {
    split_lines(text)
        .enumerate()
        .filter_map(|(i, l)| {
            let t = trim_js(l);
            if t.is_empty() || t.starts_with(['#', ';']) {
                None
            } else {
                Some(FlatLine {
                    line: i + 1,
                    text: t.to_owned(),
                })
            }
        })
        .collect()
}

/// Every line of a `data` file.
pub fn parse_data(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = split_lines(text).map(str::to_owned).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn list_rules() {
        let cases: &[(&str, &[&str])] = &[
            (
                "# comment\nline1\nline2\nline3\n\nline5\n",
                &["line1", "line2", "line3", "line5"],
            ),
            ("  a  \r\n\t; c\r  # d\rb", &["a", "b"]),
            ("tls # note", &["tls # note"]),
            ("", &[]),
        ];
        for (input, want) in cases {
            let got: Vec<String> = parse_list(input).into_iter().map(|l| l.text).collect();
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn data_rules() {
        assert_eq!(
            parse_data("line1\nline2\nline3\n\nline5"),
            ["line1", "line2", "line3", "", "line5"]
        );
        assert_eq!(parse_data("a\n"), ["a"]);
        assert_eq!(parse_data("a\n\n"), ["a", ""]);
        assert_eq!(parse_data(" # x \r\n"), [" # x "]);
        assert!(parse_data("").is_empty());
    }
}
