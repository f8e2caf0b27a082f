//! A received message: editable header fields plus the body.
//!
//! Everything stored is CRLF-normalised and dot-unstuffed (see [`crate::data`]).
//! Header fields are kept raw (name, colon, value, folded continuation lines joined
//! by CR LF) so that what is forwarded is what was received, apart from the edits
//! plugins make. [`DotStuffer`] produces the DATA stream for the next hop and
//! normalises again, so a plugin that puts a bare LF into a field or the body can
//! never smuggle a line past the next hop either.

/// The message of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Header fields in order, each the raw field (name, colon, value, folded
    /// continuation lines) without the final CRLF.
    pub headers: Vec<Vec<u8>>,
    /// The body after the empty line, CRLF line ends, dot-unstuffed.
    pub body: Vec<u8>,
}

fn field_name(field: &[u8]) -> Option<&[u8]> {
    let colon = field.iter().position(|&b| b == b':')?;
    let name = &field[..colon];
    if name.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(name)
}

/// Turns every line break that does not start a fold into a fold (Haraka's
/// `foldContinuations`), and every line break into CR LF.
fn fold_value(value: &str) -> Vec<u8> {
    let v = value.trim_end_matches(['\r', '\n']).as_bytes();
    let mut out = Vec::with_capacity(v.len() + 8);
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if b == b'\r' || b == b'\n' {
            if b == b'\r' && v.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            out.extend_from_slice(b"\r\n");
            if !matches!(v.get(i + 1), Some(b' ' | b'\t')) {
                out.push(b' ');
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

impl Message {
    /// Values of every field named `name` (case-insensitive), unfolded (CR LF
    /// removed), without leading and trailing whitespace.
    pub fn get_header(&self, name: &str) -> Vec<String> {
        self.raw_values(name)
            .into_iter()
            .map(|v| {
                let unfolded: Vec<u8> = v
                    .iter()
                    .copied()
                    .filter(|&b| b != b'\r' && b != b'\n')
                    .collect();
                String::from_utf8_lossy(&unfolded).trim().to_owned()
            })
            .collect()
    }

    /// Raw values (after the colon and following whitespace, folds kept).
    fn raw_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|f| field_name(f).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes())))
            .map(|f| {
                let colon = f.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
                let start = f[colon..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map_or(f.len(), |p| colon + p);
                f[start..].to_vec()
            })
            .collect()
    }

    fn make_field(name: &str, value: &str) -> Vec<u8> {
        let name: String = name.chars().filter(|&c| c != '\r' && c != '\n').collect();
        let name = if name.is_empty() {
            "X-Haraka-Blank".to_owned()
        } else {
            name
        };
        let mut f = format!("{name}: ").into_bytes();
        f.extend_from_slice(&fold_value(value));
        f
    }

    /// Append a field (Haraka's `transaction.add_header`).
    pub fn add_header(&mut self, name: &str, value: &str) {
        self.headers.push(Message::make_field(name, value));
    }

    /// Put a field first (Haraka's `transaction.add_leading_header`).
    pub fn add_leading_header(&mut self, name: &str, value: &str) {
        self.headers.insert(0, Message::make_field(name, value));
    }

    /// Remove every field named `name` (case-insensitive).
    pub fn remove_header(&mut self, name: &str) {
        self.headers
            .retain(|f| !field_name(f).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes())));
    }

    /// How many `Received:` fields there are (for `max_received`).
    pub fn received_count(&self) -> usize {
        self.headers
            .iter()
            .filter(|f| field_name(f).is_some_and(|n| n.eq_ignore_ascii_case(b"received")))
            .count()
    }

    /// Rename every `Authentication-Results` field to `Original-Authentication-Results`
    /// (appended at the end, as Haraka's `auth_results_clean` does).
    pub fn clean_auth_results(&mut self) {
        let values = self.raw_values("Authentication-Results");
        if values.is_empty() {
            return;
        }
        self.remove_header("Authentication-Results");
        for v in values {
            let mut f = b"Original-Authentication-Results: ".to_vec();
            f.extend_from_slice(&v);
            self.headers.push(f);
        }
    }

    /// The header section: every field followed by CR LF (no empty line after it).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in &self.headers {
            out.extend_from_slice(f);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The body (dot-unstuffed, CRLF line ends).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The whole message: header section, empty line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Size of [`Message::to_bytes`] without building it.
    pub fn len(&self) -> usize {
        self.headers.iter().map(|f| f.len() + 2).sum::<usize>() + 2 + self.body.len()
    }

    /// No header and no body.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.body.is_empty()
    }

    /// The DATA stream for the next hop: the message CRLF-normalised and
    /// dot-stuffed, ending with `.\r\n`.
    pub fn write_dot_stuffed(&self, out: &mut Vec<u8>) {
        for chunk in self.dot_stuffed_chunks() {
            out.extend_from_slice(&chunk);
        }
    }

    /// [`Message::write_dot_stuffed`] in pieces of about 64 KiB.
    pub fn dot_stuffed_chunks(&self) -> DotStuffedChunks<'_> {
        DotStuffedChunks {
            msg: self,
            stuffer: DotStuffer::new(),
            stage: 0,
            pos: 0,
        }
    }
}

/// Iterator over the dot-stuffed DATA stream of a [`Message`].
#[derive(Debug)]
pub struct DotStuffedChunks<'a> {
    msg: &'a Message,
    stuffer: DotStuffer,
    stage: u8,
    pos: usize,
}

const CHUNK: usize = 64 * 1024;

impl Iterator for DotStuffedChunks<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        // Sized for what is left (plus room for some stuffing), not a whole chunk:
        // most messages are far smaller than 64 KiB.
        let left = match self.stage {
            0 => self.msg.len(),
            1 => self.msg.body.len().saturating_sub(self.pos),
            _ => 0,
        };
        let wanted = left.min(CHUNK) + left.min(CHUNK) / 32 + 16;
        let mut out = Vec::with_capacity(wanted);
        while out.len() < CHUNK {
            match self.stage {
                0 => match self.msg.headers.get(self.pos) {
                    Some(f) => {
                        self.stuffer.push(f, &mut out);
                        self.stuffer.push(b"\r\n", &mut out);
                        self.pos += 1;
                    }
                    None => {
                        self.stuffer.push(b"\r\n", &mut out);
                        self.stage = 1;
                        self.pos = 0;
                    }
                },
                1 => {
                    let body = &self.msg.body;
                    if self.pos >= body.len() {
                        self.stage = 2;
                        continue;
                    }
                    let end = (self.pos + CHUNK).min(body.len());
                    self.stuffer.push(&body[self.pos..end], &mut out);
                    self.pos = end;
                }
                2 => {
                    self.stuffer.finish(&mut out);
                    self.stage = 3;
                    break;
                }
                _ => break,
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }
}

/// Streaming dot-stuffer and line-end normaliser for an outgoing DATA stream.
///
/// Every bare CR and bare LF becomes CR LF; every line that starts with `.` gets
/// another `.`; [`DotStuffer::finish`] ends an unterminated last line and writes
/// the final `.\r\n`.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> DotStuffer {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// Stuff `input` into `out`. Runs of line content are copied whole; only line
    /// ends and a dot at a line start need a decision.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 2);
        let mut rest = input;
        while let Some((&b, tail)) = rest.split_first() {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.pending_cr = true;
                    rest = tail;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    rest = tail;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    out.extend_from_slice(&rest[..run]);
                    self.at_line_start = false;
                    rest = &rest[run..];
                }
            }
        }
    }

    /// End the stream: CR LF if the last line is open, then `.\r\n`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.at_line_start = true;
    }
}

/// Builds a [`Message`] from the lines of a [`crate::data::DataReceiver`].
#[derive(Debug, Clone, Default)]
pub struct MessageBuilder {
    leading: Vec<Vec<u8>>,
    header_lines: Vec<Vec<u8>>,
    /// What the stored header lines cost in memory (see [`MessageBuilder::memory`]).
    header_memory: u64,
    in_body: bool,
    message: Message,
}

/// What one stored header line costs beyond its bytes: its `Vec` and the
/// allocator's rounding and bookkeeping. A message of many short lines without
/// an empty line is held line by line until its end, so this is not negligible.
const HEADER_LINE_OVERHEAD: u64 = 48;

fn looks_like_header(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t')) || field_name(line).is_some()
}

impl MessageBuilder {
    pub fn new() -> MessageBuilder {
        MessageBuilder::default()
    }

    /// A field that goes first (Haraka's own `Received:`), given as `name`, `value`.
    pub fn leading_field(&mut self, name: &str, value: &str) {
        self.leading.push(Message::make_field(name, value));
    }

    /// One stored line, ending in CR LF.
    pub fn push_line(&mut self, line: &[u8]) {
        if self.in_body {
            self.message.body.extend_from_slice(line);
            return;
        }
        let content = line.strip_suffix(b"\r\n").unwrap_or(line);
        if content.is_empty() {
            let lines = std::mem::take(&mut self.header_lines);
            self.set_headers(lines);
            self.in_body = true;
        } else {
            self.header_memory += content.len() as u64 + HEADER_LINE_OVERHEAD;
            self.header_lines.push(content.to_vec());
        }
    }

    /// Bytes of memory the lines stored so far hold (the body's capacity, not only
    /// its length), for the memory budget. The `leading` fields are not counted.
    pub fn memory(&self) -> u64 {
        self.header_memory + self.message.body.capacity() as u64
    }

    fn set_headers(&mut self, lines: Vec<Vec<u8>>) {
        let mut fields = std::mem::take(&mut self.leading);
        let own = fields.len();
        for line in lines {
            let cont = matches!(line.first(), Some(b' ' | b'\t')) && fields.len() > own;
            match fields.last_mut() {
                Some(prev) if cont => {
                    prev.extend_from_slice(b"\r\n");
                    prev.extend_from_slice(&line);
                }
                _ => fields.push(line),
            }
        }
        self.message.headers = fields;
    }

    /// The message. Without an empty line, the leading lines that look like header
    /// fields are the header and the rest is the body (Haraka's "busted email" rule).
    pub fn finish(mut self) -> Message {
        if !self.in_body {
            let mut lines = std::mem::take(&mut self.header_lines);
            let split = lines
                .iter()
                .position(|l| !looks_like_header(l))
                .unwrap_or(lines.len());
            let body_lines = lines.split_off(split);
            self.set_headers(lines);
            for l in body_lines {
                self.message.body.extend_from_slice(&l);
                self.message.body.extend_from_slice(b"\r\n");
            }
        }
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::{DotStuffer, HEADER_LINE_OVERHEAD, MessageBuilder};

    #[test]
    fn memory_counts_header_lines_with_their_overhead_and_the_body_capacity() {
        let mut b = MessageBuilder::new();
        assert_eq!(b.memory(), 0);
        b.push_line(b"Subject: x\r\n");
        b.push_line(b"a\r\n");
        assert_eq!(b.memory(), 11 + 2 * HEADER_LINE_OVERHEAD);
        b.push_line(b"\r\n");
        b.push_line(&[b'z'; 1000]);
        assert!(b.memory() >= 11 + 2 * HEADER_LINE_OVERHEAD + 1000);
        let message = b.clone().finish();
        assert_eq!(message.body.len(), 1000);
    }

    fn stuff(pieces: &[&[u8]]) -> Vec<u8> {
        let mut st = DotStuffer::new();
        let mut out = Vec::new();
        for p in pieces {
            st.push(p, &mut out);
        }
        st.finish(&mut out);
        out
    }

    #[test]
    fn stuffs_and_normalises_in_any_chunking() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b".a\r\nb.\r\n..c", b"..a\r\nb.\r\n...c\r\n.\r\n"),
            (b"a\nb\rc\r\n", b"a\r\nb\r\nc\r\n.\r\n"),
            (b"\r\r\n.\n.", b"\r\n\r\n..\r\n..\r\n.\r\n"),
            (b"", b".\r\n"),
            (
                b"plain text without an end",
                b"plain text without an end\r\n.\r\n",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                stuff(&[input]),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(stuff(&bytes), want, "{:?}", String::from_utf8_lossy(input));
        }
    }
}
