//! The INI dialect, as table tests. The first group re-expresses the cases of
//! haraka-config's own test suite (`test/readers/ini.js`, `test/config.js`,
//! `test/regex.js`); the rest cover the dialect rules of `docs/configuration.md` ("File formats").

use std::path::Path;

use haraka_config::{Booleans, Ini, Scalar, is_float, is_integer, is_true};

/// The same sections and values as haraka-config's `test/config/test.ini`.
const SAMPLE: &str = "; sample
bool_true=true
bool_false=false
str_true=true
str_false=false

[sect1]
bool_true=true
bool_false=false
str_true=true
str_false=false

[whitespace]
str_no_trail=true
str_trail=true \t

[funnychars]
results.auth/auth_base.fail=fun

[empty_values]
first
second

[has_ipv6]
2605:ae00:329::2

[array_test]
hostlist[] = first_host
hostlist[] = second_host
hostlist[] = third_host
intlist[] = 123
intlist[] = 456
intlist[] = 789

[foo.com]
is_bool=true

[bar.com]
is_bool=false

[has_nums]
integer = 454
float=10.5
";

fn parse(text: &str, decls: &[&str]) -> (Ini, usize) {
    let mut d = Vec::new();
    let ini = Ini::parse_with(Path::new("t.ini"), text, &Booleans::new(decls), &mut d);
    (ini, d.len())
}

/// `(section, key)` → expected raw value (`None` = key without `=`; missing rows
/// are checked separately).
type Expect<'a> = &'a [(&'a str, &'a str, Option<&'a str>)];

fn check(ini: &Ini, want: Expect<'_>, label: &str) {
    for (s, k, v) in want {
        let got = ini
            .entry(s, k)
            .unwrap_or_else(|| panic!("{label}: [{s}] {k} missing"));
        assert_eq!(got.value.as_deref(), *v, "{label}: [{s}] {k}");
    }
}

#[test]
fn sample_without_booleans() {
    let (ini, bad) = parse(SAMPLE, &[]);
    assert_eq!(bad, 0);
    check(
        &ini,
        &[
            ("main", "bool_true", Some("true")),
            ("main", "bool_false", Some("false")),
            ("main", "str_true", Some("true")),
            ("main", "str_false", Some("false")),
            ("sect1", "bool_true", Some("true")),
            ("sect1", "str_false", Some("false")),
            ("whitespace", "str_no_trail", Some("true")),
            ("whitespace", "str_trail", Some("true")),
            ("funnychars", "results.auth/auth_base.fail", Some("fun")),
            ("empty_values", "first", None),
            ("empty_values", "second", None),
            ("has_ipv6", "2605:ae00:329::2", None),
            ("foo.com", "is_bool", Some("true")),
            ("bar.com", "is_bool", Some("false")),
            ("has_nums", "integer", Some("454")),
            ("has_nums", "float", Some("10.5")),
        ],
        "no booleans",
    );
    assert_eq!(
        ini.get_list("array_test", "hostlist"),
        ["first_host", "second_host", "third_host"]
    );
    assert_eq!(ini.get_list("array_test", "intlist"), ["123", "456", "789"]);
    assert_eq!(
        ini.entry("has_nums", "integer").unwrap().scalar(),
        Some(Scalar::Int(454))
    );
    assert_eq!(
        ini.entry("has_nums", "float").unwrap().scalar(),
        Some(Scalar::Float(10.5))
    );
    let names: Vec<&str> = ini.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "main",
            "sect1",
            "whitespace",
            "funnychars",
            "empty_values",
            "has_ipv6",
            "array_test",
            "foo.com",
            "bar.com",
            "has_nums"
        ]
    );
}

#[test]
fn sample_with_booleans() {
    // (declarations, expectations, keys that must be absent)
    type Case<'a> = (&'a [&'a str], Expect<'a>, &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            &["main.bool_true", "main.bool_false"],
            &[
                ("main", "bool_true", Some("true")),
                ("main", "bool_false", Some("false")),
                ("main", "str_true", Some("true")),
                ("sect1", "bool_true", Some("true")),
            ],
            &[],
        ),
        (
            &["sect1.bool_true", "sect1.bool_false"],
            &[
                ("sect1", "bool_true", Some("true")),
                ("sect1", "bool_false", Some("false")),
            ],
            &[],
        ),
        (
            &[
                "+sect1.bool_true",
                "-sect1.bool_false",
                "+sect1.bool_true_default",
                "sect1.-bool_false_default",
            ],
            &[
                ("sect1", "bool_true", Some("true")),
                ("sect1", "bool_false", Some("false")),
                ("sect1", "str_true", Some("true")),
                ("sect1", "bool_true_default", Some("true")),
                ("sect1", "bool_false_default", Some("false")),
            ],
            &[],
        ),
        (
            &["+main.bool_true", "*.is_bool"],
            &[
                ("main", "bool_true", Some("true")),
                ("foo.com", "is_bool", Some("true")),
                ("bar.com", "is_bool", Some("false")),
            ],
            &[("main", "is_bool")],
        ),
        (
            &["*.bool_true", "*.bool_false"],
            &[
                ("main", "bool_true", Some("true")),
                ("main", "bool_false", Some("false")),
                ("sect1", "bool_true", Some("true")),
                ("sect1", "bool_false", Some("false")),
                ("main", "str_false", Some("false")),
            ],
            &[],
        ),
    ];
    for (decls, want, absent) in cases {
        let (ini, bad) = parse(SAMPLE, decls);
        assert_eq!(bad, 0);
        check(&ini, want, &format!("{decls:?}"));
        for (s, k) in *absent {
            assert!(
                ini.entry(s, k).is_none(),
                "{decls:?}: [{s}] {k} should be absent"
            );
        }
        assert!(ini.section("*").is_none(), "wildcards create no section");
    }
}

#[test]
fn missing_file_with_boolean_defaults() {
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (&["reject"], "main", "reject", "false"),
        (&["+reject"], "main", "reject", "true"),
        (&["+main.reject"], "main", "reject", "true"),
        (&["main.+reject"], "main", "reject", "true"),
        (&["-reject"], "main", "reject", "false"),
        (&["-main.reject"], "main", "reject", "false"),
        (&["main.-reject"], "main", "reject", "false"),
        (&["-reject.boolf"], "reject", "boolf", "false"),
        (&["+reject.boolt"], "reject", "boolt", "true"),
    ];
    for (decls, s, k, v) in cases {
        let (ini, _) = parse("", decls);
        assert_eq!(ini.get(s, k), Some(*v), "{decls:?}");
        assert_eq!(ini.get_bool(s, k, !is_true(v)), is_true(v), "{decls:?}");
        assert!(ini.section("main").is_some());
    }
    let (empty, _) = parse("", &[]);
    assert_eq!(empty.sections.len(), 1);
    assert!(empty.sections[0].entries.is_empty());
}

#[test]
fn goobers_line_is_invalid() {
    let (ini, bad) = parse("SHA:HIGH:!aNULL:!eNULL:!EXPORT:!DES:!MD5:!PSK:!RC4\n", &[]);
    assert_eq!(bad, 1);
    assert_eq!(ini, Ini::empty(Path::new("t.ini")));
}

#[test]
fn regex_equivalents() {
    let sections: &[(&str, Option<&str>)] = &[
        ("[foo]", Some("foo")),
        ("bar", None),
        ("[bar", None),
        ("bar]", None),
        ("  [ spaced name ]  ", Some("spaced name")),
        ("[]", Some("")),
        ("[a[b]", Some("a[b")),
    ];
    for (line, want) in sections {
        let (ini, _) = parse(&format!("{line}\nk=v\n"), &[]);
        match want {
            Some(name) => assert_eq!(ini.get(name, "k"), Some("v"), "{line}"),
            None => assert!(ini.sections.len() == 1, "{line} is no section"),
        }
    }
    for (s, int, float) in [
        ("1", true, false),
        ("", false, false),
        ("a", false, false),
        ("-7", true, false),
        ("1.0", false, true),
        ("45", true, false),
        ("-1.5", false, true),
        ("1.", false, false),
        ("10.0.0.2", false, false),
    ] {
        assert_eq!((is_integer(s), is_float(s)), (int, float), "{s:?}");
    }
    for (s, t) in [
        ("no", false),
        ("nope", false),
        ("nuh uh", false),
        ("yes", true),
        ("true", true),
        ("ON", true),
        ("Enabled", true),
        ("ok", true),
        ("1", true),
        ("0", false),
    ] {
        assert_eq!(is_true(s), t, "{s}");
    }
    let (ini, bad) = parse(";foo=true\nfoo=true\n", &[]);
    assert_eq!((ini.get("main", "foo"), bad), (Some("true"), 0));
}

#[test]
fn dialect_rules() {
    // (text, section, key, expected raw value; None = absent or key without `=`)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        ("str = hello ; x", "main", "str", Some("hello ; x")),
        ("str = hello # x", "main", "str", Some("hello # x")),
        ("k=\"v\"", "main", "k", Some("\"v\"")),
        ("k='v'", "main", "k", Some("'v'")),
        ("k=C:\\path\\n", "main", "k", Some("C:\\path\\n")),
        ("k=", "main", "k", Some("")),
        ("k = a = b", "main", "k", Some("a = b")),
        ("k=1\nk=2", "main", "k", Some("2")),
        ("Key=1\nkey=2", "main", "Key", Some("1")),
        ("a=1\n[main]\nb=2", "main", "a", Some("1")),
        ("a=1\n[main]\nb=2", "main", "b", Some("2")),
        ("[s]\na=1\n[t]\nx=0\n[s]\nb=2", "s", "a", Some("1")),
        ("[s]\na=1\n[t]\nx=0\n[s]\nb=2", "s", "b", Some("2")),
        ("[S]\na=1", "s", "a", None),
        ("k=abc\\\ndef", "main", "k", Some("abcdef")),
        ("k=abc\\  \t\n  def", "main", "k", Some("abc  def")),
        ("k=a\\\n; comment\n\nb", "main", "k", Some("ab")),
        ("k=a\\\\\nb", "main", "k", Some("a\\b")),
        ("a=1\r\nb=2\rc=3", "main", "c", Some("3")),
        ("10.0.0.0/8", "main", "10.0.0.0/8", None),
        (
            "[no_tls_hosts]\n192.168.1.1\n2001:db8::/32",
            "no_tls_hosts",
            "2001:db8::/32",
            None,
        ),
        ("queue/smtp_forward", "main", "queue/smtp_forward", None),
        ("a+b=1", "main", "a+b", Some("1")),
        ("\u{feff}k=v", "main", "k", Some("v")),
        ("k=\u{a0}v\u{a0}", "main", "k", Some("v")),
        ("[__proto__]\nk=v", "main", "k", None),
        ("constructor=1", "main", "constructor", None),
        ("k=1\nk[]=2", "main", "k", None),
    ];
    for (text, s, k, want) in cases {
        let (ini, _) = parse(text, &[]);
        assert_eq!(ini.get(s, k), *want, "{text:?}");
    }
}

#[test]
fn arrays_and_plain_keys_replace_each_other() {
    let (ini, _) = parse("k=1\nk[]=2\nk[]=3\nj[]=1\nj=2\na[]b[]=x", &[]);
    assert_eq!(ini.get_list("main", "k"), ["2", "3"]);
    assert!(ini.entry("main", "k").is_none());
    assert_eq!(ini.get("main", "j"), Some("2"));
    assert!(ini.section("main").unwrap().array("j").is_none());
    // JavaScript's `replace('[]', '')` removes only the first `[]`.
    assert_eq!(ini.get_list("main", "ab[]"), ["x"]);
    // `[]` alone is a plain key.
    let (ini, _) = parse("[]=1", &[]);
    assert_eq!(ini.get("main", "[]"), Some("1"));
}

#[test]
fn declared_booleans_normalise_values() {
    let text = "a=yes\nb=no\nc\nd=TRUE\ne=1\nf=0\ng=enabled\nh= on \n[x]\nflag=ok\n";
    let decls = [
        "main.a", "main.b", "main.c", "main.d", "main.e", "main.f", "main.g", "main.h", "*.flag",
        "+main.z",
    ];
    let (ini, _) = parse(text, &decls);
    let want = [
        ("a", "true"),
        ("b", "false"),
        ("c", "false"),
        ("d", "true"),
        ("e", "true"),
        ("f", "false"),
        ("g", "true"),
        ("h", "true"),
        ("z", "true"),
    ];
    for (k, v) in want {
        assert_eq!(ini.get("main", k), Some(v), "{k}");
    }
    assert_eq!(ini.get("x", "flag"), Some("true"));
    // An undeclared "false" stays a string; get_bool reads it as false.
    let (ini, _) = parse("k=false\nbare", &[]);
    assert_eq!(ini.get("main", "k"), Some("false"));
    assert!(!ini.get_bool("main", "k", true));
    assert!(!ini.get_bool("main", "bare", true));
    assert!(ini.get_bool("main", "absent", true));
}

#[test]
fn line_numbers_and_getters() {
    let (ini, _) = parse("; c\n\nport=25\n[t]\nx = 10.5\nlong=a\\\nb\nn=-3\n", &[]);
    assert_eq!(ini.entry("main", "port").unwrap().line, 3);
    assert_eq!(ini.entry("t", "x").unwrap().line, 5);
    assert_eq!(ini.entry("t", "long").unwrap().line, 6);
    assert_eq!(ini.get_u64("main", "port", 0), 25);
    assert_eq!(ini.get_u64("t", "x", 7), 7);
    assert_eq!(ini.get_f64("t", "x", 0.0), 10.5);
    assert_eq!(ini.get_parsed::<u16>("main", "port"), Ok(Some(25)));
    assert_eq!(ini.get_parsed::<u16>("main", "nope"), Ok(None));
    let err = ini.get_parsed::<u16>("t", "n").unwrap_err();
    assert_eq!((err.line, err.file.as_path()), (8, Path::new("t.ini")));
}

#[test]
fn invalid_lines_are_all_reported() {
    let mut d = Vec::new();
    let ini = Ini::parse(
        Path::new("x.ini"),
        "ok=1\nbad key=1\n!x\nalso ok\n\"q\"=1\n",
        &mut d,
    );
    let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert!(d[0].to_string().starts_with("x.ini:2: "));
    assert_eq!(ini.get("main", "ok"), Some("1"));
    assert!(ini.entry("main", "also").is_none());
}

#[test]
fn unknown_keys_are_listed_with_lines() {
    let (ini, _) = parse("a=1\nzz=2\n[s]\nq=1\n[other]\nx=1\n", &[]);
    let d = ini.unknown_keys(&[("main", &["a"]), ("s", &["*"])], false);
    let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "unknown key 'zz' in [main] ignored"),
            (6, "unknown section [other] ignored")
        ]
    );
}
