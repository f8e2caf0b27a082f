//! The DATA receiver: turns the bytes after `354` into message lines.
//!
//! The rules (haraka-rs; see `docs/compat.md` for how Haraka differs):
//!
//! * Input is split into lines at every LF, as Haraka does, so dot-unstuffing and
//!   the line-length limit see the same lines Haraka sees.
//! * **End of data** is a line of exactly `.` CR LF that follows a line ended by
//!   CR LF (or is the first line after the 354). Nothing else ends DATA: `.` after a
//!   bare-LF line (`\n.\r\n`), `.` LF (`\n.\n`, `\r\n.\n`), `\r.\r\n` are message
//!   content. Haraka ends on `\n.\r\n` and answers `.\n` with a 451 that drops back
//!   into command mode; both let a sender smuggle commands.
//! * **Dot-unstuffing**: a line that starts with `.` and has more characters loses
//!   the first dot. A lone `.` line that is not the end (see above) is kept as `.`.
//! * **Normalisation**: every stored line ends in CR LF. A line ended by a bare LF
//!   gets a CR; a CR inside a line (a bare CR) becomes CR LF. So the stored message
//!   never contains a bare CR or a bare LF, and the writer that dot-stuffs it again
//!   ([`crate::message::DotStuffer`]) sees every line start.
//! * **Line length** (Haraka's `max_data_line_length`, 992): when that many bytes
//!   have arrived without an LF and another byte comes, the first `max - 2` bytes
//!   become a line (CR LF appended) and the rest continues on a new line that
//!   starts with a space. Every stored line is at most `max` bytes with its CR LF
//!   (before normalisation of bare CRs).
//! * **Size**: `data_bytes` counts every byte received after the 354, including
//!   line ends, stuffing dots, the three bytes of each fold and the final `.\r\n`,
//!   as Haraka counts. Once it exceeds the limit nothing more is stored, but input
//!   is read to the end of data.
//!
//! Memory is bounded by the line limit (the current line) plus what the caller
//! stores (at most the size limit).

/// Smallest accepted line limit (a smaller one could never make progress).
const MIN_LINE: usize = 8;

/// What [`DataReceiver::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All input was consumed; data continues.
    More,
    /// The end-of-data line was found; `consumed` bytes of this input belonged to
    /// the message (the rest is the next command).
    Done { consumed: usize },
}

/// Receives one message.
#[derive(Debug, Clone)]
pub struct DataReceiver {
    max_line: usize,
    limit: u64,
    line: Vec<u8>,
    /// The normalised copy of the current line, reused from line to line.
    stored: Vec<u8>,
    data_bytes: u64,
    prev_crlf: bool,
    line_length_exceeded: bool,
    done: bool,
}

impl DataReceiver {
    /// `max_line` is `max_data_line_length`; `limit` the size limit in bytes (0 = none).
    pub fn new(max_line: usize, limit: u64) -> DataReceiver {
        DataReceiver {
            max_line: max_line.max(MIN_LINE),
            limit,
            line: Vec::with_capacity(128),
            stored: Vec::with_capacity(128),
            data_bytes: 0,
            prev_crlf: true,
            line_length_exceeded: false,
            done: false,
        }
    }

    /// Bytes received so far, as Haraka counts them.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The message went over the size limit (it was not stored completely).
    pub fn exceeded(&self) -> bool {
        self.limit > 0 && self.data_bytes > self.limit
    }

    /// A line was folded because it was too long (Haraka's
    /// `transaction.notes.data_line_length_exceeded`).
    pub fn line_length_exceeded(&self) -> bool {
        self.line_length_exceeded
    }

    /// The end of data has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feed input; `store` receives each normalised, unstuffed line (ending in CR LF)
    /// that is within the size limit.
    pub fn feed(&mut self, input: &[u8], mut store: impl FnMut(&[u8])) -> Feed {
        if self.done {
            return Feed::Done { consumed: 0 };
        }
        let mut used = 0;
        while used < input.len() {
            if self.line.len() >= self.max_line {
                self.fold(&mut store);
            }
            // At most the bytes that fit before the line limit, up to the next LF.
            let room = self.max_line - self.line.len();
            let avail = &input[used..];
            let span = &avail[..room.min(avail.len())];
            match memchr::memchr(b'\n', span) {
                Some(lf) => {
                    self.line.extend_from_slice(&span[..=lf]);
                    used += lf + 1;
                    if self.end_line(&mut store) {
                        self.done = true;
                        return Feed::Done { consumed: used };
                    }
                }
                None => {
                    self.line.extend_from_slice(span);
                    used += span.len();
                }
            }
        }
        Feed::More
    }

    /// Haraka's fold: the first `max - 2` bytes plus CR LF are a line; the rest
    /// continues after a space.
    fn fold(&mut self, store: &mut impl FnMut(&[u8])) {
        self.line_length_exceeded = true;
        let cut = self.max_line - 2;
        let rest: Vec<u8> = self.line.split_off(cut);
        self.line.extend_from_slice(b"\r\n");
        self.end_line(store);
        self.line.push(b' ');
        self.line.extend_from_slice(&rest);
    }

    /// A complete raw line (ending in LF) is in `self.line`. Returns true at the end
    /// of data.
    fn end_line(&mut self, store: &mut impl FnMut(&[u8])) -> bool {
        let raw = std::mem::take(&mut self.line);
        self.data_bytes += raw.len() as u64;
        let crlf = raw.ends_with(b"\r\n");
        if raw == b".\r\n" && self.prev_crlf {
            self.line = raw;
            self.line.clear();
            return true;
        }
        self.prev_crlf = crlf;
        if !self.exceeded() {
            let content_end = raw.len() - if crlf { 2 } else { 1 };
            let start = usize::from(content_end > 1 && raw.first() == Some(&b'.'));
            let content = raw.get(start..content_end).unwrap_or_default();
            let bare_cr = memchr::memchr(b'\r', content).is_some();
            if crlf && !bare_cr {
                // The usual line: already content + CR LF, stored as it is.
                store(raw.get(start..).unwrap_or_default());
                self.line = raw;
                self.line.clear();
                return false;
            }
            let out = &mut self.stored;
            out.clear();
            if !bare_cr {
                out.extend_from_slice(content);
            } else {
                for piece in content.split_inclusive(|&c| c == b'\r') {
                    out.extend_from_slice(piece);
                    if piece.ends_with(b"\r") {
                        out.push(b'\n');
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
            store(out);
        }
        self.line = raw;
        self.line.clear();
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, Feed) {
        let mut rx = DataReceiver::new(992, 0);
        let mut stored = Vec::new();
        let f = rx.feed(input, |l| stored.extend_from_slice(l));
        (stored, f)
    }

    #[test]
    fn simple() {
        let (s, f) = run(b"a\r\n..b\r\n.\r\nNOOP\r\n");
        assert_eq!(s, b"a\r\n.b\r\n");
        assert_eq!(f, Feed::Done { consumed: 11 });
    }

    #[test]
    fn bare_lf_dot_is_content() {
        let (s, f) = run(b"a\n.\r\nMAIL\r\n");
        assert_eq!(s, b"a\r\n.\r\nMAIL\r\n");
        assert_eq!(f, Feed::More);
    }

    /// Lines, folds, bare CRs and the end are found the same whether the input
    /// comes whole or a byte at a time (the bulk scan must match the byte rule).
    #[test]
    fn same_result_in_any_chunking() {
        let long = [b"x".repeat(30), b"\r\n".to_vec()].concat();
        let inputs: [&[u8]; 6] = [
            b"a\r\n..b\r\nc\rd\n.\r\nNOOP\r\n",
            b"0123456789abcdefghij\n.\r\n",
            b"0123456789abcdef\r\nrest\r\n.\r\n",
            b"0123456789abcde\r\r\n.\r\n",
            b"\r\r\r\n\n\n.\n.\r\n",
            &long,
        ];
        for input in inputs {
            let mut whole = DataReceiver::new(16, 0);
            let mut a = Vec::new();
            let fa = whole.feed(input, |l| a.extend_from_slice(l));
            let mut bytes = DataReceiver::new(16, 0);
            let mut b = Vec::new();
            let mut fb = Feed::More;
            for (i, byte) in input.iter().enumerate() {
                if let Feed::Done { consumed } = bytes.feed(&[*byte], |l| b.extend_from_slice(l)) {
                    fb = Feed::Done {
                        consumed: i + consumed,
                    };
                    break;
                }
            }
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(fa, fb, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(whole.data_bytes(), bytes.data_bytes());
            assert_eq!(whole.line_length_exceeded(), bytes.line_length_exceeded());
        }
    }
}
