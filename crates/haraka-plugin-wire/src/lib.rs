//! The JSON documents that cross the haraka-rs plugin ABI, shared by
//! `haraka-plugin-sdk` (the plugin's side) and `haraka-plugin-host` (the server's
//! side), so that neither depends on the other.
//!
//! A hook call carries a *request*: `{"conn": <connection view>, "args": <hook
//! arguments>}` for SMTP hooks or `{"mail": <queued mail view>, "args": ...}` for
//! outbound hooks; the message body travels beside it as raw bytes. The plugin
//! answers with *changes*: the same view after the hook (`{"conn": ..., "requests":
//! [...]}` or `{"mail": ...}`), which the host copies onto the real state field by
//! field. Unknown keys are ignored, so a later minor version can add fields.
//! Plugin authors never see this crate. It must never do IO or panic on a
//! malformed document (every problem is a [`WireError`]).

mod args;
mod conn;
mod value;

use haraka_plugin_api::{Connection, HookArgs, OutboundArgs, OutboundMail};
use serde_json::{Value, json};

pub use args::{decode_args, decode_outbound_args, encode_args, encode_outbound_args};
pub use conn::{apply_conn, apply_mail, decode_conn, decode_mail, encode_conn, encode_mail};

/// The reply text of a hook whose plugin panicked or broke the ABI (a 4xx).
pub const PLUGIN_ERROR_TEXT: &str = "plugin error";

/// A document that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin wire format: {0}")]
pub struct WireError(pub String);

/// What a hook runs against, decoded from a request.
#[derive(Debug)]
pub enum Target {
    /// An SMTP-session hook.
    Conn { conn: Connection, args: HookArgs },
    /// An outbound hook.
    Mail {
        mail: OutboundMail,
        args: OutboundArgs,
    },
}

/// The request of an SMTP-session hook (the body is not included).
pub fn encode_conn_request(conn: &mut Connection, args: &HookArgs) -> Vec<u8> {
    json!({ "conn": encode_conn(conn), "args": encode_args(args) })
        .to_string()
        .into_bytes()
}

/// The request of an outbound hook.
pub fn encode_mail_request(mail: &OutboundMail, args: &OutboundArgs) -> Vec<u8> {
    json!({ "mail": encode_mail(mail), "args": encode_outbound_args(args) })
        .to_string()
        .into_bytes()
}

/// Decodes a request; `body` becomes the transaction's message body.
pub fn decode_request(bytes: &[u8], body: Vec<u8>) -> Result<Target, WireError> {
    let doc = parse(bytes)?;
    if let Some(view) = doc.get("conn") {
        let mut conn = decode_conn(view)?;
        if let Some(t) = conn.transaction.as_mut() {
            t.message.body = body;
        }
        let args = decode_args(doc.get("args").unwrap_or(&Value::Null))?;
        return Ok(Target::Conn { conn, args });
    }
    if let Some(view) = doc.get("mail") {
        let mail = decode_mail(view)?;
        let args = decode_outbound_args(doc.get("args").unwrap_or(&Value::Null))?;
        return Ok(Target::Mail { mail, args });
    }
    Err(WireError("request has neither `conn` nor `mail`".into()))
}

/// The changes document after an SMTP-session hook; drains the connection's
/// requests (`restart` crosses; STARTTLS cannot be requested by a cdylib plugin).
pub fn encode_conn_changes(conn: &mut Connection) -> Vec<u8> {
    let mut requests = Vec::new();
    for action in conn.take_requests() {
        match action {
            haraka_plugin_api::ConnAction::Restart => requests.push(Value::from("restart")),
            haraka_plugin_api::ConnAction::StartTls(_) => {
                tracing::warn!("a cdylib plugin cannot request STARTTLS; request dropped");
            }
        }
    }
    json!({ "conn": encode_conn(conn), "requests": requests })
        .to_string()
        .into_bytes()
}

/// The changes document after an outbound hook.
pub fn encode_mail_changes(mail: &OutboundMail) -> Vec<u8> {
    json!({ "mail": encode_mail(mail) })
        .to_string()
        .into_bytes()
}

/// Applies a changes document to the real connection. Nothing is changed when the
/// document is malformed. `body`, when given, replaces the message body.
pub fn apply_conn_changes(
    real: &mut Connection,
    bytes: &[u8],
    body: Option<Vec<u8>>,
) -> Result<(), WireError> {
    if bytes.is_empty() {
        return apply_body(real, body);
    }
    let doc = parse(bytes)?;
    let view = doc
        .get("conn")
        .ok_or_else(|| WireError("changes have no `conn`".into()))?;
    let mut edited = decode_conn(view)?;
    let restart = match doc.get("requests") {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items.iter().any(|r| r.as_str() == Some("restart")),
        Some(_) => return Err(WireError("`requests` is not an array".into())),
    };
    apply_conn(real, &mut edited);
    if restart {
        real.request(haraka_plugin_api::ConnAction::Restart);
    }
    apply_body(real, body)
}

fn apply_body(real: &mut Connection, body: Option<Vec<u8>>) -> Result<(), WireError> {
    if let Some(body) = body {
        match real.transaction.as_mut() {
            Some(t) => t.message.body = body,
            None => return Err(WireError("body replaced outside a transaction".into())),
        }
    }
    Ok(())
}

/// Applies a changes document to the real queued mail.
pub fn apply_mail_changes(real: &mut OutboundMail, bytes: &[u8]) -> Result<(), WireError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let doc = parse(bytes)?;
    let view = doc
        .get("mail")
        .ok_or_else(|| WireError("changes have no `mail`".into()))?;
    let edited = decode_mail(view)?;
    apply_mail(real, edited);
    Ok(())
}

fn parse(bytes: &[u8]) -> Result<Value, WireError> {
    serde_json::from_slice(bytes).map_err(|e| WireError(format!("invalid JSON: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests;
