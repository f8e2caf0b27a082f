//! The fuzz targets of haraka-rs, as plain functions over arbitrary bytes.
//!
//! Each target runs the crate's own `fuzz_*` entry point (which checks the
//! invariants its crate documents) and then the properties below, which hold across
//! crate boundaries. A target must never panic on any input: a panic is a bug.
//!
//! This file is compiled twice: as the `haraka-fuzz` library that the cargo-afl
//! binaries in `fuzz_targets/` call, and as a module of `xtask` (through `#[path]`)
//! so that `cargo xtask fuzz-smoke` replays seeds and regression cases through the
//! very same functions without AFL.

use std::path::Path;

use haraka_config::{Diag, Ini};
use haraka_smtp::Address;
use haraka_smtp::command::{parse_mail_args, parse_rcpt_args};
use haraka_smtp::data::{DataReceiver, Feed};
use haraka_smtp::message::DotStuffer;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target, by the name `cargo xtask fuzz <target>` takes.
pub const TARGETS: &[(&str, Target)] = &[
    ("command", command),
    ("data", data),
    ("ini", ini),
    ("session", session),
    ("reply", reply),
];

/// The SMTP command line, MAIL/RCPT argument and path parsers.
///
/// Beyond `haraka_smtp::fuzz_command`: a path that parses never carries a CR, LF
/// or NUL into what is sent onward or written into replies and `Received:`, its
/// forward path (when within the 256-octet limit) parses again to the same
/// mailbox, and no ESMTP parameter holds a line break.
pub fn command(data: &[u8]) {
    haraka_smtp::fuzz_command(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(a) = Address::parse(&text) {
        check_address(&a);
    }
    for strict in [false, true] {
        if let Ok(m) = parse_mail_args(&text, strict) {
            if let Some(a) = &m.from {
                check_address(a);
            }
            check_params(&m.params);
        }
        if let Ok(r) = parse_rcpt_args(&text, strict) {
            check_address(&r.to);
            check_params(&r.params);
        }
    }
}

fn no_line_break(s: &str) -> bool {
    !s.contains(['\r', '\n', '\0'])
}

fn check_address(a: &Address) {
    let fwd = a.forward_path();
    assert!(no_line_break(&fwd), "line break in forward path {fwd:?}");
    assert!(no_line_break(&a.format()), "line break in {:?}", a.format());
    // Punycode can lengthen a domain past the 256-octet path limit, which is only
    // checked on the path as received (as in Haraka): such a path is forwarded as
    // is and the next hop may refuse it. Within the limit it must mean the same.
    if fwd.len() > 256 {
        return;
    }
    match Address::parse(&fwd) {
        Ok(again) => assert_eq!(
            again.address(),
            a.address(),
            "forward path {fwd:?} re-parses to another mailbox"
        ),
        Err(e) => panic!("forward path {fwd:?} does not parse again: {e}"),
    }
}

fn check_params(params: &[(String, Option<String>)]) {
    for (k, v) in params {
        assert!(no_line_break(k), "line break in parameter {k:?}");
        if let Some(v) = v {
            assert!(no_line_break(v), "line break in parameter value {v:?}");
        }
    }
}

/// The DATA receiver and the outgoing dot-stuffer.
///
/// Beyond `haraka_smtp::fuzz_data`: the receiver's output (lines, end position,
/// counters) does not depend on how the input is cut into reads; every stored line
/// is bounded by the line limit; and the dot-stuffer, given any bytes in any
/// pieces, produces a stream that a receiver reads back to its very end (nothing
/// in a body can end DATA early or smuggle a command to the next hop).
pub fn data(data: &[u8]) {
    haraka_smtp::fuzz_data(data);
    let [seed, line_byte, limit_byte, input @ ..] = data else {
        return;
    };
    let max_line = 8 + usize::from(*line_byte) * 4;
    let limit = u64::from(*limit_byte) * 16;
    let whole = receive(
        max_line,
        limit,
        input,
        &mut std::iter::once(input.len().max(1)),
    );
    let mut sizes = chunk_sizes(*seed);
    let cut = receive(max_line, limit, input, &mut sizes);
    assert_eq!(whole, cut, "DATA result depends on how the input is cut");
    for line in whole.lines.split_inclusive(|&b| b == b'\n') {
        assert!(
            line.len() <= 2 * max_line + 2,
            "stored line of {} bytes",
            line.len()
        );
    }

    let mut wire = Vec::new();
    let mut stuffer = DotStuffer::new();
    let mut rest = input;
    let mut sizes = chunk_sizes(seed.wrapping_add(1));
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        stuffer.push(&rest[..n], &mut wire);
        rest = &rest[n..];
    }
    stuffer.finish(&mut wire);
    let mut rx = DataReceiver::new(usize::MAX / 2, 0);
    let end = rx.feed(&wire, |_| {});
    assert_eq!(
        end,
        Feed::Done {
            consumed: wire.len()
        },
        "dot-stuffed stream ends early or not at all"
    );
}

/// What one message looked like to the receiver.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    lines: Vec<u8>,
    /// Offset in the whole input just after the end-of-data line.
    end: Option<usize>,
    data_bytes: u64,
    exceeded: bool,
    folded: bool,
}

fn receive(
    max_line: usize,
    limit: u64,
    input: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Received {
    let mut rx = DataReceiver::new(max_line, limit);
    let mut lines = Vec::new();
    let mut end = None;
    let mut pos = 0;
    while pos < input.len() {
        let n = sizes
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - pos);
        let piece = &input[pos..pos + n];
        if let Feed::Done { consumed } = rx.feed(piece, |l| lines.extend_from_slice(l)) {
            assert!(consumed <= piece.len());
            end = Some(pos + consumed);
            break;
        }
        pos += n;
    }
    Received {
        lines,
        end,
        data_bytes: rx.data_bytes(),
        exceeded: rx.exceeded(),
        folded: rx.line_length_exceeded(),
    }
}

/// Read sizes from 1 to 64, pseudo-random from `seed` (a small LCG: the same input
/// always gives the same cuts, so a crash replays).
fn chunk_sizes(seed: u8) -> impl Iterator<Item = usize> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    std::iter::from_fn(move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        Some(1 + (state >> 26) as usize)
    })
}

/// The INI reader (and the list, data and smtp.ini readers) on arbitrary bytes.
///
/// Beyond `haraka_config::fuzz_parse`: `Ini::parse` on the lossy text keeps
/// `[main]` first, and every diagnostic and value points at a line of the file.
pub fn ini(data: &[u8]) {
    haraka_config::fuzz_parse(data);
    let text = String::from_utf8_lossy(data);
    let lines = text.split(['\n', '\r']).count();
    let mut diags: Vec<Diag> = Vec::new();
    let ini = Ini::parse(Path::new("fuzz.ini"), &text, &mut diags);
    assert_eq!(ini.sections.first().map(|s| s.name.as_str()), Some("main"));
    for d in &diags {
        assert!(
            d.line <= lines,
            "diagnostic at line {} of {lines}: {d}",
            d.line
        );
    }
    for s in &ini.sections {
        for k in s.keys() {
            for v in s.values(k) {
                assert!(
                    (1..=lines).contains(&v.line),
                    "value at line {} of {lines}",
                    v.line
                );
            }
        }
    }
}

/// A whole server session (`haraka_smtp::fuzz_session`): every hook continues,
/// RCPT and queue accept, rDNS fails, STARTTLS fails; input pieces are split at
/// 0xFF bytes.
pub fn session(data: &[u8]) {
    haraka_smtp::fuzz_session(data);
}

/// The client-side reply parser (`haraka_smtp::fuzz_reply`), which reads what an
/// upstream server sends to smtp_forward and outbound.
pub fn reply(data: &[u8]) {
    haraka_smtp::fuzz_reply(data);
}
