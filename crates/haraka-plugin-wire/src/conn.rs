//! The connection view (`connection`, `connection.transaction`) and the queued-mail
//! view (`hmail`), and how an edited view is copied back onto the real state.

use haraka_plugin_api::{
    Connection, Hello, HelloVerb, Local, MxHost, OutboundMail, Remote, Results, TlsInfo,
    Transaction,
};
use serde_json::{Value, json};

use super::WireError;
use super::value::{
    addresses, array, boolean, decode_bytes, encode_address, encode_bytes, encode_params, get, ip,
    number, object, opt, opt_address, opt_bool, opt_string, params, small, string, strings,
};

/// The connection-level relaying flag, ignoring a transaction's override.
pub(crate) fn connection_relaying(conn: &mut Connection) -> bool {
    let saved = conn.transaction.as_mut().and_then(|t| t.relaying.take());
    let flag = conn.relaying();
    if let Some(t) = conn.transaction.as_mut() {
        t.relaying = saved;
    }
    flag
}

/// The connection as plugins see it (the message body is not included).
pub fn encode_conn(conn: &mut Connection) -> Value {
    let relaying = connection_relaying(conn);
    json!({
        "uuid": conn.uuid,
        "remote": {
            "ip": conn.remote.ip.to_string(),
            "port": conn.remote.port,
            "host": conn.remote.host,
            "info": conn.remote.info,
            "is_local": conn.remote.is_local(),
            "is_private": conn.remote.is_private(),
        },
        "local": {
            "ip": conn.local.ip.to_string(),
            "port": conn.local.port,
            "host": conn.local.host,
        },
        "hello": conn.hello.as_ref().map(|h| json!({ "verb": h.verb.as_str(), "host": h.host })),
        "tls": {
            "enabled": conn.tls.enabled,
            "advertised": conn.tls.advertised,
            "verified": conn.tls.verified,
            "cipher": conn.tls.cipher,
            "version": conn.tls.version,
            "peer_subject": conn.tls.peer_subject,
        },
        "esmtp": conn.esmtp,
        "capabilities": conn.capabilities,
        "notes": Value::Object(conn.notes.clone()),
        "results": Value::Object(conn.results.all().clone()),
        "tran_count": conn.tran_count,
        "errors": conn.errors,
        "auth_user": conn.auth_user,
        "xclient_proto": conn.xclient_proto,
        "xclient_login": conn.xclient_login,
        "relaying": relaying,
        "transaction": conn.transaction.as_ref().map(encode_transaction),
    })
}

fn encode_transaction(t: &Transaction) -> Value {
    json!({
        "uuid": t.uuid,
        "mail_from": t.mail_from.as_ref().map(encode_address),
        "mail_params": encode_params(&t.mail_params),
        "rcpt_to": t.rcpt_to.iter().map(encode_address).collect::<Vec<_>>(),
        "notes": Value::Object(t.notes.clone()),
        "results": Value::Object(t.results.all().clone()),
        "relaying": t.relaying,
        "headers": t.message.headers.iter().map(|h| encode_bytes(h)).collect::<Vec<_>>(),
        "data_bytes": t.data_bytes,
        "skip_plugins": t.skip_plugins,
    })
}

fn decode_results(v: &Value, key: &str) -> Result<Results, WireError> {
    let mut results = Results::default();
    for (plugin, kinds) in object(v, key)? {
        let Value::Object(kinds) = kinds else {
            return Err(WireError(format!("`{key}.{plugin}` is not an object")));
        };
        for (kind, items) in kinds {
            let Value::Array(items) = items else {
                return Err(WireError(format!(
                    "`{key}.{plugin}.{kind}` is not an array"
                )));
            };
            for item in items {
                results.add(&plugin, &kind, item);
            }
        }
    }
    Ok(results)
}

/// A connection from its view; the transaction's body is left empty.
pub fn decode_conn(v: &Value) -> Result<Connection, WireError> {
    let r = get(v, "remote");
    let mut remote = Remote::new(ip(r, "ip")?, small(r, "port")?);
    remote.host = opt_string(r, "host")?;
    remote.info = opt_string(r, "info")?;
    let l = get(v, "local");
    let local = Local {
        ip: ip(l, "ip")?,
        port: small(l, "port")?,
        host: string(l, "host")?,
    };
    let mut conn = Connection::new(string(v, "uuid")?, remote, local);
    conn.hello = opt(v, "hello", |h| {
        let verb = match string(h, "verb")?.as_str() {
            "HELO" => HelloVerb::Helo,
            "EHLO" => HelloVerb::Ehlo,
            other => return Err(WireError(format!("unknown hello verb `{other}`"))),
        };
        Ok(Hello {
            verb,
            host: string(h, "host")?,
        })
    })?;
    let t = get(v, "tls");
    conn.tls = TlsInfo {
        enabled: boolean(t, "enabled")?,
        advertised: boolean(t, "advertised")?,
        verified: boolean(t, "verified")?,
        cipher: opt_string(t, "cipher")?,
        version: opt_string(t, "version")?,
        peer_subject: opt_string(t, "peer_subject")?,
    };
    conn.esmtp = boolean(v, "esmtp")?;
    conn.capabilities = strings(v, "capabilities")?;
    conn.notes = object(v, "notes")?;
    conn.results = decode_results(v, "results")?;
    conn.tran_count = small(v, "tran_count")?;
    conn.errors = small(v, "errors")?;
    conn.auth_user = opt_string(v, "auth_user")?;
    conn.xclient_proto = opt_string(v, "xclient_proto")?;
    conn.xclient_login = opt_string(v, "xclient_login")?;
    conn.set_connection_relaying(boolean(v, "relaying")?);
    conn.transaction = opt(v, "transaction", decode_transaction)?;
    Ok(conn)
}

fn decode_transaction(v: &Value) -> Result<Transaction, WireError> {
    let mut t = Transaction::new(string(v, "uuid")?);
    t.mail_from = opt_address(v, "mail_from")?;
    t.mail_params = params(v, "mail_params")?;
    t.rcpt_to = addresses(v, "rcpt_to")?;
    t.notes = object(v, "notes")?;
    t.results = decode_results(v, "results")?;
    t.relaying = opt_bool(v, "relaying")?;
    t.message.headers = array(v, "headers")?
        .iter()
        .map(decode_bytes)
        .collect::<Result<_, _>>()?;
    t.data_bytes = number(v, "data_bytes")?;
    t.skip_plugins = strings(v, "skip_plugins")?;
    Ok(t)
}

/// Copies what a plugin may change from `edited` onto `real`: the remote's
/// attributes, hello, capabilities, notes, results, errors, auth user, XCLIENT
/// attributes, relaying, and the transaction's sender, recipients, notes,
/// results, relaying, headers and skip list. Identities (uuids, counters, the
/// local side, TLS state) and the body are never taken from a view.
pub fn apply_conn(real: &mut Connection, edited: &mut Connection) {
    let relaying = connection_relaying(edited);
    real.remote = edited.remote.clone();
    real.hello = edited.hello.take();
    real.capabilities = std::mem::take(&mut edited.capabilities);
    real.notes = std::mem::take(&mut edited.notes);
    real.results = std::mem::take(&mut edited.results);
    real.errors = edited.errors;
    real.auth_user = edited.auth_user.take();
    real.xclient_proto = edited.xclient_proto.take();
    real.xclient_login = edited.xclient_login.take();
    let kept = real.transaction.as_ref().and_then(|t| t.relaying);
    real.set_connection_relaying(relaying);
    if let Some(r) = real.transaction.as_mut() {
        r.relaying = kept;
    }
    if let (Some(r), Some(e)) = (real.transaction.as_mut(), edited.transaction.as_mut()) {
        r.mail_from = e.mail_from.take();
        r.mail_params = std::mem::take(&mut e.mail_params);
        r.rcpt_to = std::mem::take(&mut e.rcpt_to);
        r.notes = std::mem::take(&mut e.notes);
        r.results = std::mem::take(&mut e.results);
        r.relaying = e.relaying;
        r.message.headers = std::mem::take(&mut e.message.headers);
        r.skip_plugins = std::mem::take(&mut e.skip_plugins);
    }
}

/// The queued mail as outbound plugins see it.
pub fn encode_mail(m: &OutboundMail) -> Value {
    json!({
        "id": m.id,
        "domain": m.domain,
        "mail_from": m.mail_from.as_ref().map(encode_address),
        "rcpt_to": m.rcpt_to.iter().map(encode_address).collect::<Vec<_>>(),
        "notes": Value::Object(m.notes.clone()),
        "attempts": m.attempts,
        "mx": m.mx.as_ref().map(|list| list.iter().map(|mx| json!({
            "exchange": mx.exchange,
            "priority": mx.priority,
            "port": mx.port,
            "ip": mx.ip.map(|ip| ip.to_string()),
        })).collect::<Vec<_>>()),
    })
}

/// Queued mail from its view.
pub fn decode_mail(v: &Value) -> Result<OutboundMail, WireError> {
    let mx_host = |h: &Value| {
        Ok(MxHost {
            exchange: string(h, "exchange")?,
            priority: small(h, "priority")?,
            port: opt(h, "port", |_| small(h, "port"))?.unwrap_or(25),
            ip: opt(h, "ip", |_| ip(h, "ip"))?,
        })
    };
    let mx = opt(v, "mx", |_| array(v, "mx")?.iter().map(mx_host).collect())?;
    Ok(OutboundMail {
        id: string(v, "id")?,
        domain: string(v, "domain")?,
        mail_from: opt_address(v, "mail_from")?,
        rcpt_to: addresses(v, "rcpt_to")?,
        notes: object(v, "notes")?,
        attempts: small(v, "attempts")?,
        mx,
    })
}

/// Copies what an outbound plugin may change: sender, recipients, notes, MX list.
pub fn apply_mail(real: &mut OutboundMail, edited: OutboundMail) {
    real.mail_from = edited.mail_from;
    real.rcpt_to = edited.rcpt_to;
    real.notes = edited.notes;
    real.mx = edited.mx;
}
