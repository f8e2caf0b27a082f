//! Hook arguments (Haraka's `params`) for SMTP and outbound hooks.

use haraka_plugin_api::{Action, Hook, HookArgs, OutboundArgs};
use serde_json::{Value, json};

use super::WireError;
use super::value::{
    addresses, decode_address, encode_address, encode_msg, encode_params, get, ip, number, opt,
    opt_address, opt_msg, params, small, string,
};

/// The arguments of an SMTP-session hook, tagged by `kind`.
pub fn encode_args(args: &HookArgs) -> Value {
    match args {
        HookArgs::None => json!({ "kind": "none" }),
        HookArgs::Hello(host) => json!({ "kind": "hello", "host": host }),
        HookArgs::Mail { from, params } => json!({
            "kind": "mail",
            "from": from.as_ref().map(encode_address),
            "params": encode_params(params),
        }),
        HookArgs::Rcpt { to, params } => json!({
            "kind": "rcpt",
            "to": encode_address(to),
            "params": encode_params(params),
        }),
        HookArgs::Unrecognized { verb, rest } => {
            json!({ "kind": "unrecognized", "verb": verb, "rest": rest })
        }
        HookArgs::QueueOk(msg) => json!({ "kind": "queue_ok", "msg": encode_msg(msg) }),
        HookArgs::Deny {
            action,
            msg,
            plugin,
            hook,
        } => json!({
            "kind": "deny",
            "action": action.code(),
            "msg": msg.as_ref().map(encode_msg),
            "plugin": plugin,
            "hook": hook.name(),
        }),
        HookArgs::Ip(addr) => json!({ "kind": "ip", "ip": addr.to_string() }),
    }
}

/// Hook arguments from their view.
pub fn decode_args(v: &Value) -> Result<HookArgs, WireError> {
    let kind = opt(v, "kind", |_| string(v, "kind"))?.unwrap_or_else(|| "none".into());
    Ok(match kind.as_str() {
        "none" => HookArgs::None,
        "hello" => HookArgs::Hello(string(v, "host")?),
        "mail" => HookArgs::Mail {
            from: opt_address(v, "from")?,
            params: params(v, "params")?,
        },
        "rcpt" => HookArgs::Rcpt {
            to: decode_address(get(v, "to"))?,
            params: params(v, "params")?,
        },
        "unrecognized" => HookArgs::Unrecognized {
            verb: string(v, "verb")?,
            rest: string(v, "rest")?,
        },
        "queue_ok" => HookArgs::QueueOk(opt_msg(v, "msg")?.unwrap_or_default()),
        "deny" => HookArgs::Deny {
            action: Action::from_code(small(v, "action")?)
                .ok_or_else(|| WireError("`action` is not a return code".into()))?,
            msg: opt_msg(v, "msg")?,
            plugin: string(v, "plugin")?,
            hook: Hook::from_name(&string(v, "hook")?)
                .ok_or_else(|| WireError("`hook` is not a hook name".into()))?,
        },
        "ip" => HookArgs::Ip(ip(v, "ip")?),
        other => return Err(WireError(format!("unknown argument kind `{other}`"))),
    })
}

/// The arguments of an outbound hook, tagged by `kind`.
pub fn encode_outbound_args(args: &OutboundArgs) -> Value {
    match args {
        OutboundArgs::None => json!({ "kind": "none" }),
        OutboundArgs::GetMx { domain } => json!({ "kind": "get_mx", "domain": domain }),
        OutboundArgs::Delivered {
            host,
            ip,
            port,
            response,
            ok_recips,
            secured,
        } => json!({
            "kind": "delivered",
            "host": host,
            "ip": ip,
            "port": port,
            "response": response,
            "ok_recips": ok_recips.iter().map(encode_address).collect::<Vec<_>>(),
            "secured": secured,
        }),
        OutboundArgs::Deferred { delay_secs, err } => {
            json!({ "kind": "deferred", "delay_secs": delay_secs, "err": err })
        }
        OutboundArgs::Bounce { err } => json!({ "kind": "bounce", "err": err }),
    }
}

/// Outbound hook arguments from their view.
pub fn decode_outbound_args(v: &Value) -> Result<OutboundArgs, WireError> {
    let kind = opt(v, "kind", |_| string(v, "kind"))?.unwrap_or_else(|| "none".into());
    Ok(match kind.as_str() {
        "none" => OutboundArgs::None,
        "get_mx" => OutboundArgs::GetMx {
            domain: string(v, "domain")?,
        },
        "delivered" => OutboundArgs::Delivered {
            host: string(v, "host")?,
            ip: string(v, "ip")?,
            port: small(v, "port")?,
            response: string(v, "response")?,
            ok_recips: addresses(v, "ok_recips")?,
            secured: matches!(get(v, "secured"), Value::Bool(true)),
        },
        "deferred" => OutboundArgs::Deferred {
            delay_secs: number(v, "delay_secs")?,
            err: string(v, "err")?,
        },
        "bounce" => OutboundArgs::Bounce {
            err: string(v, "err")?,
        },
        other => return Err(WireError(format!("unknown argument kind `{other}`"))),
    })
}
