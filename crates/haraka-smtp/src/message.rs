//! A received message: editable header fields plus the body.

/// The message of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Header fields in order, each the raw field (name, colon, value, folded
    /// continuation lines) without the final CRLF.
    pub headers: Vec<Vec<u8>>,
    /// The body after the empty line, CRLF line ends, dot-unstuffed.
    pub body: Vec<u8>,
}
