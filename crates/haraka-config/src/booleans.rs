//! Declared booleans: haraka-config's `options.booleans`.
//!
//! Each declaration is `[+|-][SECTION.][+|-]KEY`: no section means `main`, `*` as the
//! section means "KEY in any section", a `+` on the section or the key makes the
//! default `true`, otherwise it is `false`. A declared key's value becomes `true`
//! when it is one of Haraka's true words (exact, ASCII case-insensitive) and `false`
//! otherwise (also for `false`, `no`, empty, or a key without `=`). Every declaration
//! that is not a wildcard is present after reading, with its default when the file
//! (or the key) is missing.

use crate::ini::{Ini, IniValue};

/// `smtp.ini` (Haraka 3.0.0 `server.js` `load_smtp_ini`).
pub const SMTP_INI: &[&str] = &[
    "-main.daemonize",
    "-main.strict_rfc1869",
    "+main.smtputf8",
    "-main.graceful_shutdown",
    "+headers.add_received",
    "+headers.show_version",
    "+headers.clean_auth_results",
];

/// `tls.ini` (Haraka 3.0.0 `tls_socket.js` `load_tls_ini`).
pub const TLS_INI: &[&str] = &[
    "-redis.disable_for_failed_hosts",
    "*.requestCert",
    "*.rejectUnauthorized",
    "*.honorCipherOrder",
    "*.enableOCSPStapling",
    "*.requestOCSP",
    "+main.requestCert",
    "-main.rejectUnauthorized",
    "+main.honorCipherOrder",
    "-main.requestOCSP",
    "-main.mutual_tls",
];

/// `log.ini` (Haraka 3.0.0 `logger.js`).
pub const LOG_INI: &[&str] = &["+main.timestamps"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Decl {
    section: String,
    key: String,
    default: bool,
}

/// A parsed list of boolean declarations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Booleans {
    decls: Vec<Decl>,
    /// The declarations as written plus their `section.key` forms (haraka-config
    /// matches `SECTION.KEY` and `*.KEY` against this list).
    matches: Vec<String>,
}

impl Booleans {
    /// Parse declarations such as `+main.smtputf8`, `-relay.all`, `*.enable_tls`.
    pub fn new(decls: &[&str]) -> Booleans {
        let mut b = Booleans {
            decls: Vec::new(),
            matches: decls.iter().map(|d| (*d).to_owned()).collect(),
        };
        for d in decls {
            let Some(decl) = parse_decl(d) else { continue };
            let entry = format!("{}.{}", decl.section, decl.key);
            if !b.matches.contains(&entry) {
                b.matches.push(entry);
            }
            if decl.section != "*" {
                b.decls.push(decl);
            }
        }
        b
    }

    /// Whether `section.key` is a declared boolean (directly or by wildcard).
    pub fn is_declared(&self, section: &str, key: &str) -> bool {
        let direct = format!("{section}.{key}");
        let wild = format!("*.{key}");
        self.matches.iter().any(|m| *m == direct || *m == wild)
    }

    /// Normalise declared keys to `true`/`false` and add the missing ones.
    pub fn apply(&self, ini: &mut Ini) {
        if self.matches.is_empty() {
            return;
        }
        for s in &mut ini.sections {
            let name = s.name.clone();
            for (k, v) in &mut s.entries {
                if self.is_declared(&name, k) {
                    let t = v.value.as_deref().is_some_and(is_truth);
                    v.value = Some(t.to_string());
                }
            }
        }
        for d in &self.decls {
            let file = ini.file.clone();
            let sect = ini.section_mut(&d.section);
            if sect.get(&d.key).is_none() && sect.array(&d.key).is_none() {
                sect.set(
                    &d.key,
                    IniValue {
                        value: Some(d.default.to_string()),
                        file,
                        line: 0,
                    },
                );
            }
        }
    }
}

/// `^(?:true|yes|ok|enabled|on|1)$`i, exact (no trimming).
fn is_truth(v: &str) -> bool {
    ["true", "yes", "ok", "enabled", "on", "1"]
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w))
}

/// `^(?:([^. ]+)\.)?(.+)`, then the `+`/`-` prefixes.
fn parse_decl(d: &str) -> Option<Decl> {
    let (mut section, mut key) = match d.split_once('.') {
        Some((s, k)) if !s.is_empty() && !s.contains(' ') && !k.is_empty() => (s, k),
        _ => ("main", d),
    };
    if key.is_empty() {
        return None;
    }
    let default = section.starts_with('+') || key.starts_with('+');
    if let Some(s) = section.strip_prefix(['+', '-']) {
        section = s;
    }
    if let Some(k) = key.strip_prefix(['+', '-']) {
        key = k;
    }
    Some(Decl {
        section: section.to_owned(),
        key: key.to_owned(),
        default,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("reject", "main", "reject", false),
            ("+reject", "main", "reject", true),
            ("-reject", "main", "reject", false),
            ("+main.reject", "main", "reject", true),
            ("main.+reject", "main", "reject", true),
            ("main.-reject", "main", "reject", false),
            ("-reject.boolf", "reject", "boolf", false),
            ("+reject.boolt", "reject", "boolt", true),
            (
                "sect1.-bool_false_default",
                "sect1",
                "bool_false_default",
                false,
            ),
            (
                "results.auth/auth_base.fail",
                "results",
                "auth/auth_base.fail",
                false,
            ),
            ("main.", "main", "main.", false),
        ];
        for (d, s, k, def) in cases {
            let got = parse_decl(d).unwrap();
            assert_eq!(
                (got.section.as_str(), got.key.as_str(), got.default),
                (*s, *k, *def),
                "{d}"
            );
        }
    }
}
