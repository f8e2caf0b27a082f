//! Small readers for JSON values, each failing with a [`WireError`] naming the key.

use std::net::IpAddr;

use haraka_plugin_api::{Address, Msg, Notes};
use serde_json::{Map, Value, json};

use super::WireError;

pub(crate) fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// `f` of the value at `key`, or `None` when it is missing or null.
pub(crate) fn opt<'a, T>(
    v: &'a Value,
    key: &str,
    f: impl FnOnce(&'a Value) -> Result<T, WireError>,
) -> Result<Option<T>, WireError> {
    match get(v, key) {
        Value::Null => Ok(None),
        inner => f(inner).map(Some),
    }
}

pub(crate) fn string(v: &Value, key: &str) -> Result<String, WireError> {
    get(v, key)
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| WireError(format!("`{key}` is not a string")))
}

pub(crate) fn opt_string(v: &Value, key: &str) -> Result<Option<String>, WireError> {
    match get(v, key) {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(WireError(format!("`{key}` is not a string or null"))),
    }
}

pub(crate) fn number(v: &Value, key: &str) -> Result<u64, WireError> {
    match get(v, key) {
        Value::Null => Ok(0),
        n => n
            .as_u64()
            .ok_or_else(|| WireError(format!("`{key}` is not a non-negative integer"))),
    }
}

pub(crate) fn small<T: TryFrom<u64>>(v: &Value, key: &str) -> Result<T, WireError> {
    T::try_from(number(v, key)?).map_err(|_| WireError(format!("`{key}` is out of range")))
}

pub(crate) fn boolean(v: &Value, key: &str) -> Result<bool, WireError> {
    match get(v, key) {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(WireError(format!("`{key}` is not a boolean"))),
    }
}

pub(crate) fn opt_bool(v: &Value, key: &str) -> Result<Option<bool>, WireError> {
    match get(v, key) {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(WireError(format!("`{key}` is not a boolean or null"))),
    }
}

pub(crate) fn ip(v: &Value, key: &str) -> Result<IpAddr, WireError> {
    string(v, key)?
        .parse()
        .map_err(|_| WireError(format!("`{key}` is not an IP address")))
}

pub(crate) fn array<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], WireError> {
    match get(v, key) {
        Value::Null => Ok(&[]),
        Value::Array(items) => Ok(items),
        _ => Err(WireError(format!("`{key}` is not an array"))),
    }
}

pub(crate) fn strings(v: &Value, key: &str) -> Result<Vec<String>, WireError> {
    array(v, key)?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| WireError(format!("`{key}` holds a non-string")))
        })
        .collect()
}

pub(crate) fn object(v: &Value, key: &str) -> Result<Notes, WireError> {
    match get(v, key) {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        _ => Err(WireError(format!("`{key}` is not an object"))),
    }
}

pub(crate) fn encode_address(a: &Address) -> Value {
    json!({
        "user": a.user,
        "host": a.host,
        "original_host": a.original_host,
        "original": a.original,
    })
}

/// An address; a view holding only `original` (as a C plugin may write) is parsed.
pub(crate) fn decode_address(v: &Value) -> Result<Address, WireError> {
    if v.get("user").is_none() {
        let text = string(v, "original")?;
        return Address::parse(&text).map_err(|e| WireError(e.to_string()));
    }
    Ok(Address {
        user: string(v, "user")?,
        host: opt_string(v, "host")?,
        original_host: opt_string(v, "original_host")?,
        original: string(v, "original")?,
    })
}

pub(crate) fn opt_address(v: &Value, key: &str) -> Result<Option<Address>, WireError> {
    opt(v, key, decode_address)
}

pub(crate) fn addresses(v: &Value, key: &str) -> Result<Vec<Address>, WireError> {
    array(v, key)?.iter().map(decode_address).collect()
}

pub(crate) fn encode_params(params: &[(String, Option<String>)]) -> Value {
    Value::Array(params.iter().map(|(k, v)| json!([k, v])).collect())
}

pub(crate) fn params(v: &Value, key: &str) -> Result<Vec<(String, Option<String>)>, WireError> {
    array(v, key)?
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::Null]) => Ok((k.clone(), None)),
            Some([Value::String(k), Value::String(val)]) => Ok((k.clone(), Some(val.clone()))),
            _ => Err(WireError(format!("`{key}` holds a malformed parameter"))),
        })
        .collect()
}

pub(crate) fn encode_msg(m: &Msg) -> Value {
    json!({ "code": m.code, "lines": m.lines })
}

pub(crate) fn opt_msg(v: &Value, key: &str) -> Result<Option<Msg>, WireError> {
    opt(v, key, |m| {
        Ok(Msg {
            code: opt(m, "code", |_| small(m, "code"))?,
            lines: strings(m, "lines")?,
        })
    })
}

/// Raw bytes: a string when they are UTF-8, else an array of numbers.
pub(crate) fn encode_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::from(s),
        Err(_) => Value::Array(b.iter().map(|&x| Value::from(x)).collect()),
    }
}

pub(crate) fn decode_bytes(v: &Value) -> Result<Vec<u8>, WireError> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Array(items) => items
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| WireError("a byte array holds a non-byte".into()))
            })
            .collect(),
        _ => Err(WireError("bytes are neither a string nor an array".into())),
    }
}
