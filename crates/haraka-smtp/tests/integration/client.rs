//! Client side: reply parser, EHLO capabilities, command formatting.

use std::net::IpAddr;

use haraka_smtp::Reply;
use haraka_smtp::XclientAttrs;
use haraka_smtp::client::{
    Capabilities, ReplyError, ReplyParser, ehlo_cmd, mail_cmd, parse_reply, rcpt_cmd,
};
use haraka_smtp::xclient::{xclient_addr, xtext};

#[test]
fn single_and_multi_line() {
    let (r, n) = parse_reply(b"250 OK\r\nrest").unwrap().unwrap();
    assert_eq!(
        (r.code, r.lines.clone(), n),
        (250, vec!["OK".to_owned()], 8)
    );
    let (r, _) = parse_reply(b"250-a\r\n250-b\n250 c\r\n").unwrap().unwrap();
    assert_eq!(r.lines, vec!["a", "b", "c"]);
    let (r, _) = parse_reply(b"354\r\n").unwrap().unwrap();
    assert_eq!((r.code, r.lines.clone()), (354, vec![String::new()]));
}

#[test]
fn incomplete() {
    assert_eq!(parse_reply(b"250-a\r\n250 b").unwrap(), None);
    assert_eq!(parse_reply(b"").unwrap(), None);
    assert_eq!(parse_reply(b"25").unwrap(), None);
}

#[test]
fn errors() {
    assert!(matches!(
        parse_reply(b"hello\r\n"),
        Err(ReplyError::Malformed(_))
    ));
    assert!(matches!(
        parse_reply(b"250x\r\n"),
        Err(ReplyError::Malformed(_))
    ));
    assert!(matches!(
        parse_reply(b"650 no\r\n"),
        Err(ReplyError::Malformed(_))
    ));
    assert_eq!(
        parse_reply(b"250-a\r\n251 b\r\n"),
        Err(ReplyError::CodeMismatch {
            first: 250,
            then: 251
        })
    );
    assert_eq!(parse_reply(&[b'2'; 5000]), Err(ReplyError::LineTooLong));
    let many = b"250-x\r\n".repeat(300);
    assert_eq!(parse_reply(&many), Err(ReplyError::TooManyLines));
}

#[test]
fn incremental_parser() {
    let mut p = ReplyParser::new();
    let input = b"220 hi\r\n250-a\r\n250 b\r\n";
    for &b in &input[..10] {
        p.feed(&[b]);
    }
    assert_eq!(p.next_reply().unwrap(), Some(Reply::line(220, "hi")));
    assert_eq!(p.next_reply().unwrap(), None);
    p.feed(&input[10..]);
    assert_eq!(p.next_reply().unwrap(), Some(Reply::new(250, ["a", "b"])));
    assert_eq!(p.buffered(), 0);
}

#[test]
fn capabilities() {
    let reply = Reply::new(
        250,
        [
            "backend.test Hello",
            "PIPELINING",
            "SIZE 10240000",
            "starttls",
            "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
            "AUTH PLAIN LOGIN",
        ],
    );
    let c = Capabilities::from_reply(&reply);
    assert_eq!(c.greeting, "backend.test Hello");
    assert!(c.has("STARTTLS") && c.has("pipelining") && !c.has("8BITMIME"));
    assert_eq!(c.size(), Some(10_240_000));
    assert!(c.has_param("xclient", "addr") && !c.has_param("XCLIENT", "FOO"));
    assert!(c.has_param("AUTH", "plain"));
    assert!(c.position("STARTTLS") < c.position("XCLIENT"));
    let none = Capabilities::from_reply(&Reply::new(250, ["x", "SIZE"]));
    assert_eq!(none.size(), Some(0));
}

#[test]
fn commands() {
    assert_eq!(
        mail_cmd("a@b.c", &[("SIZE", Some("100"))]).unwrap(),
        b"MAIL FROM:<a@b.c> SIZE=100\r\n"
    );
    assert_eq!(mail_cmd("", &[]).unwrap(), b"MAIL FROM:<>\r\n");
    assert_eq!(
        rcpt_cmd("x@y", &[("NOTIFY", Some("NEVER"))]).unwrap(),
        b"RCPT TO:<x@y> NOTIFY=NEVER\r\n"
    );
    assert_eq!(ehlo_cmd("mx.test").unwrap(), b"EHLO mx.test\r\n");
    assert!(ehlo_cmd("a\r\nRSET").is_err());
    assert!(mail_cmd("a@b", &[("X", Some("1\n"))]).is_err());
}

#[test]
fn xclient() {
    assert_eq!(xtext("a+b=c d\u{e9}"), "a+2Bb+3Dc+20d+C3+A9");
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(xclient_addr(v6), "IPV6:2001:db8::1");
    let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
    assert_eq!(xclient_addr(mapped), "1.2.3.4");
    let adv: Vec<String> = ["NAME", "ADDR", "HELO"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let attrs = XclientAttrs {
        addr: Some("1.2.3.4".parse().unwrap()),
        name: Some("[UNAVAILABLE]".into()),
        login: Some("bob".into()),
        helo: Some("a b".into()),
        ..XclientAttrs::default()
    };
    assert_eq!(
        attrs.commands(&adv),
        ["XCLIENT HELO=a+20b NAME=[UNAVAILABLE] ADDR=1.2.3.4"]
    );
    let login_only = XclientAttrs {
        login: Some("bob".into()),
        ..XclientAttrs::default()
    };
    assert!(login_only.commands(&adv).is_empty());
}

#[test]
fn xtext_decoding() {
    use haraka_smtp::xclient::xtext_decode;
    let table = [
        ("plain", Some("plain")),
        ("a+2Bb", Some("a+b")),
        ("a+2bb", Some("a+b")),
        ("+3D", Some("=")),
        ("trail+", None),
        ("trail+4", None),
        ("sign++1x", None),
        ("bad+G1", None),
        ("+C3+A9", Some("\u{e9}")),
        ("+FF", None),
    ];
    for (input, expect) in table {
        assert_eq!(xtext_decode(input).as_deref(), expect, "{input}");
    }
}
