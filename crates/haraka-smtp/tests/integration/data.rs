//! The DATA receiver: end of data, smuggling variants, dot-unstuffing, bare CR/LF
//! normalisation, line folding, size counting.

use haraka_smtp::data::{DataReceiver, Feed};

struct Case {
    name: &'static str,
    input: &'static [u8],
    /// What is stored (CRLF-normalised, unstuffed).
    stored: &'static [u8],
    /// Bytes of the input that belong to the message, or None if DATA goes on.
    consumed: Option<usize>,
}

const CASES: &[Case] = &[
    Case {
        name: "plain",
        input: b"a\r\nb\r\n.\r\n",
        stored: b"a\r\nb\r\n",
        consumed: Some(9),
    },
    Case {
        name: "empty message",
        input: b".\r\n",
        stored: b"",
        consumed: Some(3),
    },
    Case {
        name: "empty line then dot",
        input: b"\r\n.\r\nX",
        stored: b"\r\n",
        consumed: Some(5),
    },
    Case {
        name: "dot-stuffing",
        input: b"..a\r\n...\r\n.\r\n",
        stored: b".a\r\n..\r\n",
        consumed: Some(13),
    },
    Case {
        name: "LF . CRLF is content",
        input: b"a\n.\r\nb\r\n",
        stored: b"a\r\n.\r\nb\r\n",
        consumed: None,
    },
    Case {
        name: "LF . LF is content",
        input: b"a\n.\nb\r\n",
        stored: b"a\r\n.\r\nb\r\n",
        consumed: None,
    },
    Case {
        name: "CR . CRLF is content",
        input: b"a\r.\r\nb\r\n",
        stored: b"a\r\n.\r\nb\r\n",
        consumed: None,
    },
    Case {
        name: "CRLF . LF is content",
        input: b"a\r\n.\nb\r\n",
        stored: b"a\r\n.\r\nb\r\n",
        consumed: None,
    },
    Case {
        name: "CR . CR is content",
        input: b"a\r.\rb\r\n",
        stored: b"a\r\n.\r\nb\r\n",
        consumed: None,
    },
    Case {
        name: "dot LF at start",
        input: b".\nx\r\n",
        stored: b".\r\nx\r\n",
        consumed: None,
    },
    Case {
        name: "end after smuggle attempt",
        input: b"a\n.\r\nMAIL\r\n.\r\n",
        stored: b"a\r\n.\r\nMAIL\r\n",
        consumed: Some(14),
    },
    Case {
        name: "bare LF lines unstuffed",
        input: b"a\n..b\n.\r\n",
        stored: b"a\r\n.b\r\n.\r\n",
        consumed: None,
    },
    Case {
        name: "bare CR mid-line",
        input: b"x\ry\r\n.\r\n",
        stored: b"x\r\ny\r\n",
        consumed: Some(8),
    },
    Case {
        name: "NUL and 8-bit kept",
        input: b"\x00\xff\r\n.\r\n",
        stored: b"\x00\xff\r\n",
        consumed: Some(7),
    },
];

fn run_chunked(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>) {
    let mut rx = DataReceiver::new(992, 0);
    let mut stored = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(chunk) {
        if let Feed::Done { consumed } = rx.feed(piece, |l| stored.extend_from_slice(l)) {
            return (stored, Some(offset + consumed));
        }
        offset += piece.len();
    }
    (stored, None)
}

#[test]
fn table() {
    for c in CASES {
        for chunk in [1, 2, 3, 7, 1000] {
            let (stored, consumed) = run_chunked(c.input, chunk);
            assert_eq!(stored, c.stored, "{} (chunk {chunk})", c.name);
            assert_eq!(consumed, c.consumed, "{} (chunk {chunk})", c.name);
        }
    }
}

#[test]
fn folding_as_haraka() {
    let mut input = vec![b'x'; 2000];
    input.extend_from_slice(b"\r\n.\r\n");
    let mut rx = DataReceiver::new(992, 0);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    assert_eq!(
        rx.feed(&input, |l| lines.push(l.to_vec())),
        Feed::Done { consumed: 2005 }
    );
    let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
    assert_eq!(lens, vec![992, 992, 24]);
    assert!(lines[1].starts_with(b" x"));
    assert!(rx.line_length_exceeded());
    // 2000 + CRLF + 3 per fold (2 folds) + final dot line.
    assert_eq!(rx.data_bytes(), 2000 + 2 + 6 + 3);
}

#[test]
fn longest_unfolded_line() {
    // 990 bytes + CRLF = 992: no fold; 991 + CRLF: fold.
    for (n, folded) in [(990, false), (991, true)] {
        let mut input = vec![b'y'; n];
        input.extend_from_slice(b"\r\n.\r\n");
        let mut rx = DataReceiver::new(992, 0);
        let mut count = 0;
        rx.feed(&input, |_| count += 1);
        assert_eq!(rx.line_length_exceeded(), folded, "{n}");
        assert_eq!(count, if folded { 2 } else { 1 }, "{n}");
    }
}

#[test]
fn databytes_stop_storing_keep_reading() {
    let mut rx = DataReceiver::new(992, 10);
    let mut stored = Vec::new();
    let f = rx.feed(b"12345678\r\nabc\r\nmore\r\n.\r\nNOOP\r\n", |l| {
        stored.extend_from_slice(l)
    });
    assert_eq!(f, Feed::Done { consumed: 24 });
    assert_eq!(stored, b"12345678\r\n");
    assert!(rx.exceeded());
    assert_eq!(rx.data_bytes(), 24);
}

#[test]
fn exact_limit_is_not_exceeded() {
    let mut rx = DataReceiver::new(992, 8);
    let f = rx.feed(b"abc\r\n.\r\n", |_| {});
    assert_eq!(f, Feed::Done { consumed: 8 });
    assert!(!rx.exceeded());
}

#[test]
fn memory_is_bounded_without_lf() {
    let mut rx = DataReceiver::new(992, 1000);
    let mut stored = 0usize;
    for _ in 0..1000 {
        rx.feed(&[b'z'; 1000], |l| stored += l.len());
    }
    assert!(rx.exceeded());
    assert!(stored <= 1000);
}

#[test]
fn fuzz_entries_accept_anything() {
    for input in [
        &b""[..],
        b"\x01",
        b"\x03\x00a\r\n.\r\n",
        b"\x01\x01\n.\n\r.\r..\r\n.\r\n",
        &[0xffu8; 300],
    ] {
        haraka_smtp::fuzz_data(input);
        haraka_smtp::fuzz_command(input);
        haraka_smtp::fuzz_reply(input);
        haraka_smtp::fuzz_session(input);
    }
    haraka_smtp::fuzz_session(
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n\xffhi\r\n.\r\nQUIT\r\n",
    );
}
