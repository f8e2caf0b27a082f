//! The INI dialect of haraka-config, line for line.
//!
//! Rules (haraka-config `lib/readers/ini.js` + `lib/regex.js`):
//! lines split on CRLF, CR or LF; a line whose first non-blank character is `;` or
//! `#` is a comment (no inline comments); `[name]` opens or re-opens a section
//! (keys before any header live in `main`); a line ending in `\` (plus optional
//! spaces/tabs) is joined to the next one; `KEY[=VALUE]` with KEY made of
//! `[A-Za-z0-9_@:./+\-\[\]]`; no quote or escape processing; the last duplicate
//! wins; `key[]=` appends to an array; anything else is an invalid line.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Diag;
use crate::booleans::Booleans;
use crate::text::{is_js_space, split_lines, trim_js};

/// Section and key names haraka-config refuses (they would reach JS prototypes).
const UNSAFE: [&str; 3] = ["__proto__", "constructor", "prototype"];

/// One value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniValue {
    /// `None` for a key written without `=`.
    pub value: Option<String>,
    pub file: PathBuf,
    /// 1-based line; 0 for a value that no file line set (a declared default).
    pub line: usize,
}

/// What haraka-config's coercion makes of a value (integers and floats by regex).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `^-?\d+$`
    Int(i64),
    /// `^-?\d+\.\d+$`
    Float(f64),
    /// Anything else (also integers too large for `i64`).
    Str(String),
}

impl Scalar {
    /// Coerce a raw string as haraka-config does.
    pub fn coerce(raw: &str) -> Scalar {
        if is_integer(raw)
            && let Ok(n) = raw.parse()
        {
            return Scalar::Int(n);
        }
        if is_float(raw)
            && let Ok(f) = raw.parse()
        {
            return Scalar::Float(f);
        }
        Scalar::Str(raw.to_owned())
    }
}

/// `^-?\d+$` (ASCII digits).
pub fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `^-?\d+\.\d+$` (ASCII digits).
pub fn is_float(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    match body.split_once('.') {
        Some((a, b)) => {
            is_integer(a) && !a.starts_with('-') && is_integer(b) && !b.starts_with('-')
        }
        None => false,
    }
}

impl IniValue {
    /// A diagnostic pointing at this value.
    pub fn diag(&self, message: impl Into<String>) -> Diag {
        Diag {
            file: self.file.clone(),
            line: self.line,
            message: message.into(),
        }
    }

    /// The value as text (`""` for a key without `=`).
    pub fn text(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }

    /// haraka-config's coercion of this value.
    pub fn scalar(&self) -> Option<Scalar> {
        self.value.as_deref().map(Scalar::coerce)
    }

    /// Haraka's true words (`true yes ok enabled on 1`); a key without `=` is false.
    pub fn is_true(&self) -> bool {
        self.value.as_deref().is_some_and(crate::is_true)
    }
}

/// A `[section]` (the implicit first one is `main`).
///
/// A key lives either in `entries` (plain value) or in `arrays` (`key[]=`), never
/// in both: as in haraka-config, a later plain `key=` replaces an array and a later
/// `key[]=` replaces a plain value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Keys in file order; a repeated key keeps its first position and last value.
    pub entries: Vec<(String, IniValue)>,
    /// `key[]=` arrays, stored under the key without `[]`.
    pub arrays: Vec<(String, Vec<IniValue>)>,
}

impl Section {
    fn named(name: &str) -> Section {
        Section {
            name: name.to_owned(),
            ..Section::default()
        }
    }

    pub fn get(&self, key: &str) -> Option<&IniValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn array(&self, key: &str) -> Option<&[IniValue]> {
        self.arrays
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Every key, plain ones first (file order), then arrays.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.arrays.iter().map(|(k, _)| k.as_str()))
    }

    /// A plain value or every element of an array (Haraka accepts both for e.g. tls `key`).
    pub fn values(&self, key: &str) -> Vec<&IniValue> {
        match self.get(key) {
            Some(v) => vec![v],
            None => self
                .array(key)
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
        }
    }

    /// Set a plain value (replacing an array of the same name).
    pub fn set(&mut self, key: &str, value: IniValue) {
        self.arrays.retain(|(k, _)| k != key);
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }

    /// Append to an array (replacing a plain value of the same name).
    pub fn push(&mut self, key: &str, value: IniValue) {
        self.entries.retain(|(k, _)| k != key);
        match self.arrays.iter_mut().find(|(k, _)| k == key) {
            Some(a) => a.1.push(value),
            None => self.arrays.push((key.to_owned(), vec![value])),
        }
    }

    /// Remove a key (plain or array); true if it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len() + self.arrays.len();
        self.entries.retain(|(k, _)| k != key);
        self.arrays.retain(|(k, _)| k != key);
        before != self.entries.len() + self.arrays.len()
    }
}

/// A parsed ini file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub file: PathBuf,
    /// `main` is always the first section.
    pub sections: Vec<Section>,
}

impl Ini {
    /// An empty file: only `[main]`.
    pub fn empty(file: &Path) -> Ini {
        Ini {
            file: file.to_owned(),
            sections: vec![Section::named("main")],
        }
    }

    /// Parse `text` read from `file`; invalid lines are pushed to `diags` and skipped
    /// (as haraka-config logs and skips them). Never panics.
    pub fn parse(file: &Path, text: &str, diags: &mut Vec<Diag>) -> Ini {
        let mut ini = Ini::empty(file);
        // `None` while inside an unsafe section: its keys are dropped.
        let mut cur: Option<usize> = Some(0);
        let mut pre = String::new();
        let mut pre_line = 0;
        for (idx, line) in split_lines(text).enumerate() {
            let n = idx + 1;
            if is_comment(line) || line.chars().all(is_js_space) {
                continue;
            }
            if let Some(name) = section_name(line) {
                if UNSAFE.contains(&name) {
                    diags.push(diag(
                        file,
                        n,
                        format!("unsafe section name [{name}] ignored"),
                    ));
                    cur = None;
                } else {
                    cur = Some(ini.section_index_or_insert(name));
                }
                continue;
            }
            if let Some(head) = strip_continuation(line) {
                if pre.is_empty() {
                    pre_line = n;
                }
                pre.push_str(head);
                continue;
            }
            let (joined, at) = if pre.is_empty() {
                (line.to_owned(), n)
            } else {
                let mut j = std::mem::take(&mut pre);
                j.push_str(line);
                (j, pre_line)
            };
            let Some(idx) = cur else { continue };
            ini.apply_param(idx, &joined, at, diags);
        }
        if !pre.is_empty() {
            tracing::warn!(
                "{}:{}: continuation line at end of file ignored",
                file.display(),
                pre_line
            );
        }
        ini
    }

    /// Parse with declared booleans applied (see [`Booleans`]).
    pub fn parse_with(file: &Path, text: &str, booleans: &Booleans, diags: &mut Vec<Diag>) -> Ini {
        let mut ini = Ini::parse(file, text, diags);
        booleans.apply(&mut ini);
        ini
    }

    fn apply_param(&mut self, idx: usize, line: &str, n: usize, diags: &mut Vec<Diag>) {
        let Some((key, value)) = parse_param(line) else {
            diags.push(diag(&self.file, n, format!("invalid line: {line}")));
            return;
        };
        let (base, is_array) = match array_base(key) {
            Some(b) => (b, true),
            None => (key.to_owned(), false),
        };
        if UNSAFE.contains(&base.as_str()) {
            diags.push(diag(&self.file, n, format!("unsafe key '{key}' ignored")));
            return;
        }
        let v = IniValue {
            value: value.map(str::to_owned),
            file: self.file.clone(),
            line: n,
        };
        if let Some(sect) = self.sections.get_mut(idx) {
            if is_array {
                sect.push(&base, v);
            } else {
                sect.set(key, v);
            }
        }
    }

    pub(crate) fn section_index_or_insert(&mut self, name: &str) -> usize {
        match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sections.push(Section::named(name));
                self.sections.len() - 1
            }
        }
    }

    /// The named section, created if absent.
    pub fn section_mut(&mut self, name: &str) -> &mut Section {
        let i = self.section_index_or_insert(name);
        &mut self.sections[i]
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The raw value of `section.key` (`None` when absent or written without `=`).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?.get(key)?.value.as_deref()
    }

    /// The value with its file and line.
    pub fn entry(&self, section: &str, key: &str) -> Option<&IniValue> {
        self.section(section)?.get(key)
    }

    /// A plain value or every element of a `key[]` array, as text.
    pub fn get_list(&self, section: &str, key: &str) -> Vec<&str> {
        self.section(section)
            .map(|s| s.values(key).into_iter().map(IniValue::text).collect())
            .unwrap_or_default()
    }

    /// A boolean with Haraka's true words; absent keys give `default`. A key written
    /// without `=` is false (as a declared boolean is in haraka-config).
    pub fn get_bool(&self, section: &str, key: &str, default: bool) -> bool {
        match self.entry(section, key) {
            Some(v) => v.is_true(),
            None => default,
        }
    }

    /// A number; absent or non-numeric values give `default`.
    pub fn get_u64(&self, section: &str, key: &str, default: u64) -> u64 {
        self.get(section, key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// A float (timeouts in seconds); absent or non-numeric values give `default`.
    pub fn get_f64(&self, section: &str, key: &str, default: f64) -> f64 {
        self.get(section, key)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .unwrap_or(default)
    }

    /// A value parsed strictly: `Ok(None)` when absent, a [`Diag`] with file:line
    /// when present but not a `T` (a key without `=` is not a `T` either).
    pub fn get_parsed<T: FromStr>(&self, section: &str, key: &str) -> Result<Option<T>, Diag> {
        let Some(v) = self.entry(section, key) else {
            return Ok(None);
        };
        match v.value.as_deref().map(|s| s.parse::<T>()) {
            Some(Ok(t)) => Ok(Some(t)),
            _ => Err(v.diag(format!("[{section}] {key}: invalid value '{}'", v.text()))),
        }
    }

    /// Keys and sections not in `known` (`(section, keys)`; a `"*"` key list entry
    /// allows any key in that section). Sections absent from `known` are reported
    /// once (at their first key) unless `other_sections_ok`.
    pub fn unknown_keys(&self, known: &[(&str, &[&str])], other_sections_ok: bool) -> Vec<Diag> {
        let mut out = Vec::new();
        for s in &self.sections {
            match known.iter().find(|(name, _)| *name == s.name) {
                Some((_, keys)) => {
                    if keys.contains(&"*") {
                        continue;
                    }
                    for (k, v) in s
                        .entries
                        .iter()
                        .map(|(k, v)| (k, Some(v)))
                        .chain(s.arrays.iter().map(|(k, a)| (k, a.first())))
                    {
                        if !keys.contains(&k.as_str()) {
                            let (file, line) =
                                v.map_or((self.file.clone(), 0), |v| (v.file.clone(), v.line));
                            out.push(Diag {
                                file,
                                line,
                                message: format!("unknown key '{k}' in [{}] ignored", s.name),
                            });
                        }
                    }
                }
                None if other_sections_ok => {}
                None => {
                    let first = s
                        .entries
                        .first()
                        .map(|(_, v)| v)
                        .or_else(|| s.arrays.first().and_then(|(_, a)| a.first()));
                    if let Some(v) = first {
                        out.push(v.diag(format!("unknown section [{}] ignored", s.name)));
                    }
                }
            }
        }
        out
    }

    /// [`Ini::unknown_keys`], each logged as a warning.
    pub fn warn_unknown(&self, known: &[(&str, &[&str])], other_sections_ok: bool) {
        for d in self.unknown_keys(known, other_sections_ok) {
            tracing::warn!("{d}");
        }
    }

    /// Deep merge: every key of `over` replaces the same key here (haraka-config's
    /// `merge_config` for ini files; sections are merged, not replaced).
    pub fn merge_from(&mut self, over: &Ini) {
        for s in &over.sections {
            let dst = self.section_mut(&s.name);
            for (k, v) in &s.entries {
                dst.set(k, v.clone());
            }
            for (k, a) in &s.arrays {
                dst.remove(k);
                for v in a {
                    dst.push(k, v.clone());
                }
            }
        }
        self.file = over.file.clone();
    }
}

fn diag(file: &Path, line: usize, message: String) -> Diag {
    Diag {
        file: file.to_owned(),
        line,
        message,
    }
}

/// `^\s*[;#]`
fn is_comment(line: &str) -> bool {
    matches!(
        line.trim_start_matches(is_js_space).chars().next(),
        Some(';' | '#')
    )
}

/// `^\s*\[([^\]]*)\]\s*$`, name trimmed.
fn section_name(line: &str) -> Option<&str> {
    let inner = trim_js(line).strip_prefix('[')?.strip_suffix(']')?;
    if inner.contains(']') {
        return None;
    }
    Some(trim_js(inner))
}

/// `\\[ \t]*$`: the line without its final backslash, if it has one.
fn strip_continuation(line: &str) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix('\\')
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@:./+-[]".contains(c)
}

/// `^\s*([\w@:._+\-/[\]]+)\s*(?:=\s*(.*?)\s*)?$`
pub(crate) fn parse_param(line: &str) -> Option<(&str, Option<&str>)> {
    let s = line.trim_start_matches(is_js_space);
    let end = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let (key, rest) = s.split_at(end);
    let rest = rest.trim_start_matches(is_js_space);
    if rest.is_empty() {
        return Some((key, None));
    }
    let value = trim_js(rest.strip_prefix('=')?);
    // JS `.` does not match the line terminators U+2028 / U+2029.
    if value.contains(['\u{2028}', '\u{2029}']) {
        return None;
    }
    Some((key, Some(value)))
}

/// `^(.+)\[\]$` → the key with its first `[]` removed (JS `replace('[]', '')`).
fn array_base(key: &str) -> Option<String> {
    if key.len() > 2 && key.ends_with("[]") {
        Some(key.replacen("[]", "", 1))
    } else {
        None
    }
}
