//! The content of a queue file: haraka-rs's own versioned, checksummed format, and a
//! reader for Haraka's format so a Haraka queue can be drained after a migration.
//!
//! haraka-rs format, version 1 (all integers big-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `HRSQ` |
//! | 4 | 2 | version (1) |
//! | 6 | 2 | flags (0) |
//! | 8 | 4 | header length `H` |
//! | 12 | 8 | message length `M` |
//! | 20 | 4 | CRC-32 of the header |
//! | 24 | 4 | CRC-32 of the message |
//! | 28 | 4 | CRC-32 of bytes 0..28 |
//! | 32 | `H` | header: UTF-8 JSON (the envelope, field names as Haraka's `TODOItem`) |
//! | 32+`H` | `M` | the message: header fields, empty line, body; CRLF; not dot-stuffed |
//!
//! The file is exactly `32 + H + M` bytes long.
//!
//! Haraka's format: 4-byte length `L`, `L` bytes of JSON, then the message with its
//! body dot-stuffed (it is piped to the socket as it is).

use haraka_smtp::Address;
use serde_json::{Map, Value, json};

use crate::QueueError;

const MAGIC: &[u8; 4] = b"HRSQ";
const VERSION: u16 = 1;
/// Size of the fixed prefix of a haraka-rs queue file.
pub const PREFIX_LEN: usize = 32;
/// Largest header accepted when reading (a bigger one means a damaged file).
const MAX_HEADER: usize = 64 * 1024 * 1024;

/// The envelope of one queued delivery (Haraka's `TODOItem`).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `<transaction uuid>.<k>`.
    pub uuid: String,
    /// When the message was accepted (epoch milliseconds).
    pub queue_time: u64,
    /// The recipient domain of this delivery (lower case).
    pub domain: String,
    /// `None` is the null sender `<>`.
    pub mail_from: Option<Address>,
    pub rcpt_to: Vec<Address>,
    /// The transaction's notes (`outbound_ip`, `outbound_helo`, plugin notes, …).
    pub notes: Map<String, Value>,
    /// TLS with a verified certificate is required for this delivery.
    pub force_tls: bool,
    /// The sender gave `SMTPUTF8` in MAIL FROM (JSON `"smtputf8": true`, written
    /// only when set).
    pub smtputf8: bool,
    /// The sender gave `BODY=8BITMIME` (JSON `"body": "8BITMIME"`, written only when
    /// set).
    pub body_8bitmime: bool,
}

/// Which format a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// haraka-rs's own format.
    Native,
    /// Haraka 3's queue file format.
    Haraka,
}

/// What the start of a file tells: the envelope, and where the message lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub envelope: Envelope,
    pub format: Format,
    /// Offset of the message within the file.
    pub message_offset: u64,
    /// Length of the message as stored.
    pub message_len: u64,
    /// CRC-32 of the stored message (native format only).
    pub message_crc: Option<u32>,
}

/// Serialise a file in the native format.
pub fn encode(envelope: &Envelope, message: &[u8]) -> Vec<u8> {
    let header = envelope_to_json(envelope).to_string().into_bytes();
    let mut out = Vec::with_capacity(PREFIX_LEN + header.len() + message.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&(message.len() as u64).to_be_bytes());
    out.extend_from_slice(&crc32(&header).to_be_bytes());
    out.extend_from_slice(&crc32(message).to_be_bytes());
    let prefix_crc = crc32(&out);
    out.extend_from_slice(&prefix_crc.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(message);
    out
}

/// Parse the beginning of a file of `file_len` bytes. `read_at(offset, len)` returns
/// exactly `len` bytes at `offset` (or an error).
pub fn decode_header(
    file_len: u64,
    read_at: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, QueueError>,
) -> Result<Header, QueueError> {
    if file_len < 4 {
        return Err(corrupt("file too short"));
    }
    let start = read_at(0, 4)?;
    if start.as_slice() == MAGIC {
        decode_native(file_len, read_at)
    } else {
        decode_haraka(file_len, &start, read_at)
    }
}

fn decode_native(
    file_len: u64,
    read_at: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, QueueError>,
) -> Result<Header, QueueError> {
    if file_len < PREFIX_LEN as u64 {
        return Err(corrupt("truncated prefix"));
    }
    let p = read_at(0, PREFIX_LEN)?;
    let be32 = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    if crc32(&p[..28]) != be32(28) {
        return Err(corrupt("prefix checksum mismatch"));
    }
    let version = u16::from_be_bytes([p[4], p[5]]);
    if version != VERSION {
        return Err(corrupt(&format!("unsupported format version {version}")));
    }
    let header_len = be32(8) as usize;
    let mut m = [0u8; 8];
    m.copy_from_slice(&p[12..20]);
    let message_len = u64::from_be_bytes(m);
    let expected = (PREFIX_LEN as u64)
        .checked_add(header_len as u64)
        .and_then(|n| n.checked_add(message_len));
    if expected != Some(file_len) {
        return Err(corrupt("file length does not match its prefix"));
    }
    let header = read_at(PREFIX_LEN as u64, header_len)?;
    if crc32(&header) != be32(20) {
        return Err(corrupt("header checksum mismatch"));
    }
    let value: Value = serde_json::from_slice(&header)
        .map_err(|e| corrupt(&format!("header is not JSON: {e}")))?;
    Ok(Header {
        envelope: envelope_from_json(&value)?,
        format: Format::Native,
        message_offset: (PREFIX_LEN + header_len) as u64,
        message_len,
        message_crc: Some(be32(24)),
    })
}

fn decode_haraka(
    file_len: u64,
    start: &[u8],
    read_at: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, QueueError>,
) -> Result<Header, QueueError> {
    let len = u32::from_be_bytes([start[0], start[1], start[2], start[3]]) as usize;
    if len == 0 || len > MAX_HEADER || 4 + len as u64 > file_len {
        return Err(corrupt("Didn't find right amount of data in todo"));
    }
    let raw = read_at(4, len)?;
    let text = std::str::from_utf8(&raw).map_err(|_| corrupt("todo header is not UTF-8"))?;
    let text = text.trim();
    if !text.ends_with('}') {
        return Err(corrupt("invalid todo header end char"));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| corrupt(&format!("todo header: {e}")))?;
    Ok(Header {
        envelope: envelope_from_json(&value)?,
        format: Format::Haraka,
        message_offset: 4 + len as u64,
        message_len: file_len - 4 - len as u64,
        message_crc: None,
    })
}

/// Turn the stored message bytes into the message (Haraka's body is dot-stuffed).
pub fn decode_message(header: &Header, stored: Vec<u8>) -> Result<Vec<u8>, QueueError> {
    match header.format {
        Format::Native => {
            if header.message_crc != Some(crc32(&stored)) {
                return Err(corrupt("message checksum mismatch"));
            }
            Ok(stored)
        }
        Format::Haraka => Ok(dot_unstuff(&stored)),
    }
}

/// Remove the leading dot that Haraka's dot-stuffing added to every line starting
/// with a dot.
pub fn dot_unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b".") {
            Some(rest) if rest.first() == Some(&b'.') => out.extend_from_slice(rest),
            _ => out.extend_from_slice(line),
        }
    }
    out
}

fn corrupt(msg: &str) -> QueueError {
    QueueError::Corrupt(msg.to_owned())
}

/// The JSON header of an envelope (Haraka's `TODOItem` field names). The sender's
/// MAIL parameters are extra top-level fields, present only when given: a plain
/// message's header is exactly Haraka's todo, and the same JSON in a Haraka-format
/// file is still a todo Haraka 3.0.0 reads (it keeps fields it does not know and
/// ignores them; `mail_from` stays its address object).
pub fn envelope_to_json(e: &Envelope) -> Value {
    let mut v = json!({
        "queue_time": e.queue_time,
        "domain": e.domain,
        "rcpt_to": e.rcpt_to.iter().map(address_to_json).collect::<Vec<_>>(),
        "mail_from": e.mail_from.as_ref().map(address_to_json),
        "notes": Value::Object(e.notes.clone()),
        "uuid": e.uuid,
        "force_tls": e.force_tls,
    });
    if let Some(obj) = v.as_object_mut() {
        if e.smtputf8 {
            obj.insert("smtputf8".into(), Value::Bool(true));
        }
        if e.body_8bitmime {
            obj.insert("body".into(), Value::from("8BITMIME"));
        }
    }
    v
}

fn address_to_json(a: &Address) -> Value {
    json!({
        "original": a.original,
        "original_host": a.original_host,
        "host": a.host,
        "user": a.user,
    })
}

/// Read an envelope from either format's JSON. A field of the wrong JSON type makes
/// the file corrupt (it is quarantined), never a default: a `mail_from` that is a
/// number must not become the null sender.
pub fn envelope_from_json(v: &Value) -> Result<Envelope, QueueError> {
    let obj = v
        .as_object()
        .ok_or_else(|| corrupt("header is not an object"))?;
    let rcpt_to = obj
        .get("rcpt_to")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("header has no rcpt_to"))?
        .iter()
        .map(|r| address_from_json(r)?.ok_or_else(|| corrupt("empty recipient")))
        .collect::<Result<Vec<_>, _>>()?;
    if rcpt_to.is_empty() {
        return Err(corrupt("header has no recipients"));
    }
    let mail_from = match obj.get("mail_from") {
        None | Some(Value::Null) => None,
        Some(m) => address_from_json(m)?,
    };
    let domain = match typed(obj.get("domain"), "domain", Value::as_str)? {
        Some(d) => d.to_owned(),
        None => rcpt_to
            .first()
            .and_then(|a| a.host.clone())
            .unwrap_or_default(),
    };
    // Haraka writes Date.now(), an integer; tolerate a float.
    let queue_time = typed(obj.get("queue_time"), "queue_time", |t| {
        t.as_u64().or_else(|| {
            t.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    })?;
    Ok(Envelope {
        uuid: typed(obj.get("uuid"), "uuid", Value::as_str)?
            .unwrap_or_default()
            .to_owned(),
        queue_time: queue_time.unwrap_or(0),
        domain,
        mail_from,
        rcpt_to,
        notes: typed(obj.get("notes"), "notes", Value::as_object)?
            .cloned()
            .unwrap_or_default(),
        force_tls: typed(obj.get("force_tls"), "force_tls", Value::as_bool)?.unwrap_or(false),
        smtputf8: typed(obj.get("smtputf8"), "smtputf8", Value::as_bool)?.unwrap_or(false),
        body_8bitmime: body_8bitmime(obj.get("body"))?,
    })
}

/// `"body"`: `8BITMIME` or `7BIT` (any case), absent or null for neither. Any other
/// value is a body type this server cannot deliver as asked: the file is corrupt.
fn body_8bitmime(v: Option<&Value>) -> Result<bool, QueueError> {
    match typed(v, "body", Value::as_str)? {
        None => Ok(false),
        Some(b) if b.eq_ignore_ascii_case("8BITMIME") => Ok(true),
        Some(b) if b.eq_ignore_ascii_case("7BIT") => Ok(false),
        Some(b) => Err(corrupt(&format!(
            "header field body has an unknown value {b:?}"
        ))),
    }
}

/// A field read with `get`: absent or null is `None`; any other value that `get`
/// does not accept is corrupt.
fn typed<'a, T>(
    v: Option<&'a Value>,
    name: &str,
    get: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<Option<T>, QueueError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => get(v)
            .map(Some)
            .ok_or_else(|| corrupt(&format!("header field {name} has the wrong type"))),
    }
}

/// An address object; `Ok(None)` for the null path. Haraka's `original` keeps the
/// angle brackets, haraka-rs's does not; both are accepted. Anything but a string
/// or an object of strings (or nulls) is corrupt.
fn address_from_json(v: &Value) -> Result<Option<Address>, QueueError> {
    if let Some(s) = v.as_str() {
        return parse_path(s);
    }
    if !v.is_object() {
        return Err(corrupt("address is neither a string nor an object"));
    }
    let text = |k: &str| -> Result<Option<String>, QueueError> {
        Ok(typed(v.get(k), k, Value::as_str)?.map(str::to_owned))
    };
    let user = text("user")?.unwrap_or_default();
    let host = text("host")?;
    let original_host = text("original_host")?;
    let original = text("original")?;
    if user.is_empty() && host.is_none() {
        return Ok(None);
    }
    let original = original
        .map(|o| strip_brackets(&o).to_owned())
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| match &host {
            Some(h) => format!("{user}@{h}"),
            None => user.clone(),
        });
    Ok(Some(Address {
        user,
        host: host.map(|h| h.to_ascii_lowercase()),
        original_host,
        original,
    }))
}

fn parse_path(s: &str) -> Result<Option<Address>, QueueError> {
    let inner = strip_brackets(s.trim());
    if inner.is_empty() {
        return Ok(None);
    }
    Address::parse(inner)
        .map(Some)
        .map_err(|e| corrupt(&e.to_string()))
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = build_crc_table();

const fn build_crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}
