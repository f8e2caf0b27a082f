//! Command-line split and the rfc1869 MAIL/RCPT argument parser (H300 rfc1869.js).

use haraka_smtp::command::{
    Command, PathKind, parse_command, parse_mail_args, parse_rcpt_args, rfc1869, size_param,
    split_verb,
};

#[test]
fn verb_split() {
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("NOOP", Some(("NOOP", ""))),
        ("noop   x y", Some(("noop", "x y"))),
        ("MAIL FROM:<a@b>", Some(("MAIL", "FROM:<a@b>"))),
        ("", Some(("", ""))),
        ("   ", Some(("", ""))),
        ("NOOP\tx", Some(("NOOP\tx", ""))),
        ("NOOP x\ry", None),
        ("NOOP\ry", Some(("NOOP\ry", ""))),
    ];
    for &(line, want) in cases {
        assert_eq!(split_verb(line), want, "{line:?}");
    }
}

#[test]
fn commands() {
    assert_eq!(parse_command("eHlO x"), Command::Ehlo("x".into()));
    assert_eq!(parse_command("QUIT"), Command::Quit(String::new()));
    assert_eq!(parse_command("proxy TCP4"), Command::Proxy("TCP4".into()));
    assert_eq!(
        parse_command("XCLIENT ADDR=1.2.3.4"),
        Command::Unknown {
            verb: "XCLIENT".into(),
            rest: "ADDR=1.2.3.4".into()
        }
    );
    assert_eq!(
        parse_command("A b\u{2028}c"),
        Command::Unparsable("A b\u{2028}c".into())
    );
}

/// (argument, path or error, params) for MAIL, not strict.
const MAIL: &[(&str, Result<&str, &str>, &[&str])] = &[
    ("FROM:<a@b.c>", Ok("<a@b.c>"), &[]),
    ("from: <a@b.c>", Ok("<a@b.c>"), &[]),
    ("FROM:a@b.c", Ok("a@b.c"), &[]),
    ("FROM:", Ok("<>"), &[]),
    ("", Ok("<>"), &[]),
    (
        "FROM:<a@b.c> SIZE=10 BODY=8BITMIME",
        Ok("<a@b.c>"),
        &["SIZE=10", "BODY=8BITMIME"],
    ),
    ("FROM:<a@b.c>  SMTPUTF8   ", Ok("<a@b.c>"), &["SMTPUTF8"]),
    ("FROM:<a b@c.d>", Ok("<a b@c.d>"), &[]),
    (
        "FROM:<a@b.c d>",
        Err("Syntax error in parameters (\"<a@b.c d>\")"),
        &[],
    ),
    (
        "FROM:<a@b.c> SIZE=",
        Err("Syntax error in parameters (\"<a@b.c> SIZE=\")"),
        &[],
    ),
    (
        "FROM: user=name@example.net",
        Ok("user=name@example.net"),
        &[],
    ),
    ("<a@b.c>", Ok("<a@b.c>"), &[]),
    (
        "FROM:<a@b.c> X=1=2",
        Err("Syntax error in parameters (\"<a@b.c> X=1=2\")"),
        &[],
    ),
];

#[test]
fn mail_args() {
    for &(arg, want, params) in MAIL {
        let got = rfc1869(PathKind::Mail, arg, false);
        match want {
            Ok(path) => {
                let (p, ps) = got.unwrap_or_else(|e| panic!("{arg}: {e}"));
                assert_eq!(p, path, "{arg}");
                assert_eq!(ps, params, "{arg}");
            }
            Err(e) => assert_eq!(got.unwrap_err(), e, "{arg}"),
        }
    }
}

/// (argument, path or error) for RCPT.
const RCPT: &[(&str, Result<&str, &str>)] = &[
    ("TO:<a@b.c>", Ok("<a@b.c>")),
    ("to: a@b.c", Ok("<a@b.c>")),
    ("TO:<Postmaster>", Ok("<Postmaster>")),
    ("TO:<abuse>", Ok("<abuse>")),
    ("TO:postmaster", Err("Syntax error in address: postmaster")),
    ("TO:<foo>", Err("Syntax error in address: <foo>")),
    ("TO:", Err("Syntax error in address: ")),
    ("TO:<a b@c>", Err("Syntax error in parameters")),
];

#[test]
fn rcpt_args() {
    for &(arg, want) in RCPT {
        let got = rfc1869(PathKind::Rcpt, arg, false).map(|(p, _)| p);
        assert_eq!(
            got.as_deref(),
            want.map_err(|e| e.to_owned()).as_deref(),
            "{arg}"
        );
    }
}

#[test]
fn strict() {
    assert!(rfc1869(PathKind::Mail, "FROM:<a@b.c>", true).is_ok());
    assert_eq!(
        rfc1869(PathKind::Mail, "FROM: <a@b.c>", true).unwrap_err(),
        "Invalid format of mail command:  <a@b.c>"
    );
    assert_eq!(
        rfc1869(PathKind::Rcpt, "TO:a@b.c", true).unwrap_err(),
        "Invalid format of rcpt command: a@b.c"
    );
}

#[test]
fn typed_args() {
    let m = parse_mail_args("FROM:<a@b.c> size=1e3 body=8bitmime size=2000", false).unwrap();
    assert_eq!(m.from.unwrap().address(), "a@b.c");
    assert_eq!(
        m.params,
        vec![
            ("SIZE".to_owned(), Some("2000".to_owned())),
            ("BODY".to_owned(), Some("8bitmime".to_owned()))
        ]
    );
    assert_eq!(size_param(&m.params), Some(2000.0));
    let m = parse_mail_args("FROM:<a@b.c> SIZE=0x10", false).unwrap();
    assert_eq!(size_param(&m.params), Some(16.0));
    let m = parse_mail_args("FROM:<a@b.c> SIZE=abc", false).unwrap();
    assert_eq!(size_param(&m.params), None);
    assert_eq!(parse_mail_args("FROM:<>", false).unwrap().from, None);
    let r = parse_rcpt_args("TO:<Postmaster>", false).unwrap();
    assert_eq!(
        (r.to.user.as_str(), r.to.host.as_deref()),
        ("postmaster", None)
    );
    let e = parse_rcpt_args("TO:<abuse>", false).unwrap_err();
    assert_eq!(
        e.reply_lines(),
        vec![
            "Command parsing failed",
            "Error: Invalid RFC-5321 address: Syntax error at line 1 col 7"
        ]
    );
}
