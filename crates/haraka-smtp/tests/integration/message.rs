//! Message: header parsing, edits, and the dot-stuffed writer.

use haraka_smtp::Message;
use haraka_smtp::data::{DataReceiver, Feed};
use haraka_smtp::message::{DotStuffer, MessageBuilder};

fn build(raw: &[u8]) -> Message {
    let mut rx = DataReceiver::new(992, 0);
    let mut b = MessageBuilder::new();
    let f = rx.feed(raw, |l| b.push_line(l));
    assert!(
        matches!(f, Feed::Done { .. }),
        "no end of data in test input"
    );
    b.finish()
}

const RAW: &[u8] = b"Subject: hello\r\n world\r\nFrom: A <a@b.c>\r\nsubject: second\r\nAuthentication-Results: x; spf=pass\r\n\r\n.line\r\nbody\r\n.\r\n";

#[test]
fn headers_and_body() {
    let m = build(RAW);
    assert_eq!(m.headers.len(), 4);
    assert_eq!(m.headers[0], b"Subject: hello\r\n world");
    assert_eq!(m.get_header("SUBJECT"), vec!["hello world", "second"]);
    assert_eq!(m.get_header("from"), vec!["A <a@b.c>"]);
    assert!(m.get_header("To").is_empty());
    // `.line` on the wire is the stuffed form of `line`.
    assert_eq!(m.body(), b"line\r\nbody\r\n");
}

#[test]
fn edits() {
    let mut m = build(RAW);
    m.add_header("X-Last", "1");
    m.add_leading_header("X-First", "two\nlines");
    m.remove_header("subject");
    assert_eq!(m.headers.first().unwrap(), b"X-First: two\r\n lines");
    assert_eq!(m.headers.last().unwrap(), b"X-Last: 1");
    assert!(m.get_header("Subject").is_empty());
    m.clean_auth_results();
    assert!(m.get_header("Authentication-Results").is_empty());
    assert_eq!(
        m.get_header("Original-Authentication-Results"),
        vec!["x; spf=pass"]
    );
    assert_eq!(
        m.headers.last().unwrap(),
        b"Original-Authentication-Results: x; spf=pass"
    );
}

#[test]
fn header_value_cannot_smuggle_a_line() {
    let mut m = Message::default();
    m.add_header("X-Evil", "a\r\n.\r\nMAIL FROM:<x@y>\n\rz");
    let mut out = Vec::new();
    m.write_dot_stuffed(&mut out);
    assert_eq!(
        out,
        b"X-Evil: a\r\n .\r\n MAIL FROM:<x@y>\r\n \r\n z\r\n\r\n.\r\n"
    );
}

#[test]
fn received_count() {
    let m = build(b"Received: a\r\nreceived: b\r\nX: c\r\n\r\n.\r\n");
    assert_eq!(m.received_count(), 2);
}

#[test]
fn no_empty_line() {
    let m = build(b"Subject: x\r\nFrom: y\r\nthis is body\r\nmore\r\n.\r\n");
    assert_eq!(m.headers.len(), 2);
    assert_eq!(m.body(), b"this is body\r\nmore\r\n");
    let m = build(b"no headers at all\r\n.\r\n");
    assert!(m.headers.is_empty());
    assert_eq!(m.to_bytes(), b"\r\nno headers at all\r\n");
}

#[test]
fn leading_field() {
    let mut b = MessageBuilder::new();
    b.leading_field("Received", "from x\r\n\tby y");
    b.push_line(b" continuation of nothing\r\n");
    b.push_line(b"\r\n");
    b.push_line(b"b\r\n");
    let m = b.finish();
    assert_eq!(
        m.headers,
        vec![
            b"Received: from x\r\n\tby y".to_vec(),
            b" continuation of nothing".to_vec()
        ]
    );
}

#[test]
fn dot_stuffed_writer() {
    let m = build(b"A: 1\r\n\r\n..x\r\n..\r\nend\r\n.\r\n");
    assert_eq!(m.body(), b".x\r\n.\r\nend\r\n");
    let mut out = Vec::new();
    m.write_dot_stuffed(&mut out);
    assert_eq!(out, b"A: 1\r\n\r\n..x\r\n..\r\nend\r\n.\r\n");
    assert_eq!(m.to_bytes().len(), m.len());
}

#[test]
fn stuffer_normalises() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\n.\nb\r", b"a\r\n..\r\nb\r\n.\r\n"),
        (b".\r.\r\n.", b"..\r\n..\r\n..\r\n.\r\n"),
        (b"x\r\n", b"x\r\n.\r\n"),
    ];
    for &(input, want) in cases {
        for split in 0..=input.len() {
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            s.push(&input[..split], &mut out);
            s.push(&input[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, want, "{input:?} split at {split}");
        }
    }
}

#[test]
fn chunks_cover_big_bodies() {
    let mut m = Message::default();
    m.add_header("Subject", "big");
    m.body = b".dot line\r\n".repeat(20_000);
    let chunks: Vec<Vec<u8>> = m.dot_stuffed_chunks().collect();
    assert!(chunks.len() > 1);
    let joined: Vec<u8> = chunks.concat();
    let mut whole = Vec::new();
    m.write_dot_stuffed(&mut whole);
    assert_eq!(joined, whole);
    // Reading the stream back gives the same message.
    assert_eq!(build(&whole), m);
}
