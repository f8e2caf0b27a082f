//! RFC 5321 path parser, as address-rfc2821 2.2.1 answers (checked against it).

use haraka_smtp::Address;

/// (input, user, host, original_host, format())
type Accepted = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// Accepted paths.
const OK: &[Accepted] = &[
    ("<a@b.c>", "a", Some("b.c"), Some("b.c"), "<a@b.c>"),
    ("a@b.c", "a", Some("b.c"), Some("b.c"), "<a@b.c>"),
    (
        "<B@Example.COM>",
        "B",
        Some("example.com"),
        Some("Example.COM"),
        "<B@Example.COM>",
    ),
    (
        "<\"a b\"@b.c>",
        "\"a b\"",
        Some("b.c"),
        Some("b.c"),
        "<\"a b\"@b.c>",
    ),
    (
        "<\"a\\\"b\"@B.C>",
        "\"a\\\"b\"",
        Some("b.c"),
        Some("B.C"),
        "<\"a\\\"b\"@B.C>",
    ),
    (
        "<@x.y,@z.w:u@Host.COM>",
        "u",
        Some("host.com"),
        Some("Host.COM"),
        "<u@Host.COM>",
    ),
    (
        "<a@[1.2.3.4]>",
        "a",
        Some("[1.2.3.4]"),
        Some("[1.2.3.4]"),
        "<a@[1.2.3.4]>",
    ),
    (
        "<a@[IPv6:::1]>",
        "a",
        Some("[ipv6:::1]"),
        Some("[IPv6:::1]"),
        "<a@[IPv6:::1]>",
    ),
    (
        "<a@[foo:bar]>",
        "a",
        Some("[foo:bar]"),
        Some("[foo:bar]"),
        "<a@[foo:bar]>",
    ),
    ("<a@b>", "a", Some("b"), Some("b"), "<a@b>"),
    (
        "<a@1.2.3.4>",
        "a",
        Some("1.2.3.4"),
        Some("1.2.3.4"),
        "<a@1.2.3.4>",
    ),
    (
        "<a-b.c+d@x-y.z>",
        "a-b.c+d",
        Some("x-y.z"),
        Some("x-y.z"),
        "<a-b.c+d@x-y.z>",
    ),
    (
        "<ü@bü.de>",
        "ü",
        Some("xn--b-eha.de"),
        Some("bü.de"),
        "<ü@bü.de>",
    ),
    ("<Postmaster>", "postmaster", None, None, "<postmaster>"),
    ("postmaster", "postmaster", None, None, "<postmaster>"),
    ("<POSTMASTER>", "postmaster", None, None, "<postmaster>"),
];

/// (input, error text) for refused paths.
const BAD: &[(&str, &str)] = &[
    (
        "<a@b.>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 6",
    ),
    (
        "<a@-b>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 4",
    ),
    (
        "<a@b->",
        "Invalid RFC-5321 address: Syntax error at line 1 col 6",
    ),
    (
        "<abuse>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 7",
    ),
    (
        "a@b.c>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 6",
    ),
    (
        "<a.@b.c>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 4",
    ),
    (
        "<.a@b.c>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 2",
    ),
    (
        "<a..b@c>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 4",
    ),
    (
        "<a@b_c.d>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 5",
    ),
    (
        "<foo>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 5",
    ),
    ("<a@b.c", "Invalid RFC-5321 address: \"<a@b.c\""),
    ("foo", "Invalid RFC-5321 address: \"foo\""),
    (
        "<a b@c>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 3",
    ),
    (
        "<a@[1.2.3]>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 10",
    ),
    (
        "<\"a\x01\"@b>",
        "Invalid RFC-5321 address: Syntax error at line 1 col 4",
    ),
    ("<>", "Invalid RFC-5321 address: null path"),
];

#[test]
fn accepted() {
    for &(input, user, host, original_host, format) in OK {
        let a = Address::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(a.user, user, "{input}");
        assert_eq!(a.host.as_deref(), host, "{input}");
        assert_eq!(a.original_host.as_deref(), original_host, "{input}");
        assert_eq!(a.format(), format, "{input}");
    }
}

#[test]
fn refused() {
    for &(input, err) in BAD {
        match Address::parse(input) {
            Ok(a) => panic!("{input} accepted as {a:?}"),
            Err(e) => assert_eq!(e.to_string(), err, "{input}"),
        }
    }
}

#[test]
fn null_path() {
    assert_eq!(Address::parse_reverse_path("<>").unwrap(), None);
    assert_eq!(Address::parse_reverse_path("").unwrap(), None);
}

#[test]
fn length_limits() {
    let local64 = format!("<{}@b.c>", "a".repeat(64));
    assert!(Address::parse(&local64).is_ok());
    let local65 = format!("<{}@b.c>", "a".repeat(65));
    assert_eq!(
        Address::parse(&local65).unwrap_err().0,
        "RFC-5321 local-part exceeds 64 octets"
    );
    let path = format!("<a@{}.c>", "b".repeat(251));
    assert_eq!(path.len(), 257);
    assert_eq!(
        Address::parse(&path).unwrap_err().0,
        "RFC-5321 path exceeds 256 octets (257 given)"
    );
    let ok = format!("<a@{}.c>", "b".repeat(250));
    assert!(Address::parse(&ok).is_ok());
}

#[test]
fn forms() {
    let a = Address::parse("<@r.s:User@Example.COM>").unwrap();
    assert_eq!(a.original, "@r.s:User@Example.COM");
    assert_eq!(a.address(), "User@example.com");
    assert_eq!(a.forward_path(), "<User@example.com>");
    assert_eq!(a.to_string(), "<User@Example.COM>");
    let u = Address::parse("<x@Bü.de>").unwrap();
    assert!(u.is_utf8());
    assert_eq!(u.forward_path(), "<x@xn--b-eha.de>");
    let n = Address::new("a", "Example.ORG");
    assert_eq!(
        (n.address(), n.format()),
        ("a@example.org".to_owned(), "<a@Example.ORG>".to_owned())
    );
}
