//! The flat layout's `xclient.ini` as seen by smtp_forward (compatibility aliases):
//! `forward` says whether XCLIENT is sent upstream, `destination=host:port`
//! supplies `smtp_forward.ini` `host`/`port` when neither is configured.

use haraka_config::{ConfigDir, Ini, IniValue};

const XCLIENT_INI: &str = "xclient.ini";

/// Whether smtp_forward sends XCLIENT upstream when the backend offers it:
/// `xclient.ini` `forward`; true when unset, which is Haraka's behaviour. Read
/// errors are logged and give the default.
pub fn xclient_forward(cfg: &ConfigDir) -> bool {
    match cfg.ini(XCLIENT_INI) {
        Ok(ini) => {
            ini.warn_unknown(&[("main", &["enabled", "forward", "destination"])], false);
            let forward = ini.get_bool("main", "forward", true);
            if let Some(v) = ini.entry("main", "forward").filter(|v| v.line > 0) {
                cfg.alias(format!(
                    "using {}:{} forward={forward} for XCLIENT to the smtp_forward backend",
                    v.file.display(),
                    v.line
                ));
            }
            forward
        }
        Err(e) => {
            tracing::error!("{e}");
            true
        }
    }
}

/// `xclient.ini` `destination=host:port` supplies `host`/`port` of the user's
/// `smtp_forward.ini` when neither is configured.
pub(crate) fn xclient_destination(cfg: &ConfigDir, ini: &mut Ini) {
    let Ok(xc) = cfg.ini(XCLIENT_INI) else {
        return;
    };
    let Some(dest) = xc.entry("main", "destination").filter(|v| v.line > 0) else {
        return;
    };
    let Some((host, port)) = split_host_port(dest.text()) else {
        tracing::warn!(
            "{}:{}: destination '{}' is not host:port; ignored",
            dest.file.display(),
            dest.line,
            dest.text()
        );
        return;
    };
    let host_v = ini.entry("main", "host").cloned();
    let port_v = ini.entry("main", "port").cloned();
    if host_v.is_none() && port_v.is_none() {
        let main = ini.section_mut("main");
        for (key, value) in [("host", host), ("port", port)] {
            main.set(
                key,
                IniValue {
                    value: Some(value),
                    ..dest.clone()
                },
            );
        }
        cfg.alias(format!(
            "using {}:{} destination as {} host/port",
            dest.file.display(),
            dest.line,
            ini.file.display()
        ));
    } else if host_v.as_ref().is_some_and(|h| h.text() != host)
        || port_v.as_ref().is_some_and(|p| p.text() != port)
    {
        tracing::warn!(
            "{}:{}: destination {} differs from {} host/port; smtp_forward.ini wins",
            dest.file.display(),
            dest.line,
            dest.text(),
            ini.file.display()
        );
    }
}

/// `host:port`, `[v6]:port` or `host` (port 25).
fn split_host_port(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        let port = match p.strip_prefix(':') {
            Some(port) => port,
            None if p.is_empty() => "25",
            None => return None,
        };
        return valid_port(port).then(|| (h.to_owned(), port.to_owned()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.is_empty() => {
            valid_port(p).then(|| (h.to_owned(), p.to_owned()))
        }
        Some(_) => None,
        None if !s.is_empty() => Some((s.to_owned(), "25".to_owned())),
        None => None,
    }
}

fn valid_port(p: &str) -> bool {
    p.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("10.0.0.2:25", Some(("10.0.0.2", "25"))),
            ("mail.example.com", Some(("mail.example.com", "25"))),
            ("[::1]:2525", Some(("::1", "2525"))),
            ("[::1]", Some(("::1", "25"))),
            ("::1", None),
            ("h:99999", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = split_host_port(input);
            let want = want.map(|(h, p)| (h.to_owned(), p.to_owned()));
            assert_eq!(got, want, "{input}");
        }
    }
}
