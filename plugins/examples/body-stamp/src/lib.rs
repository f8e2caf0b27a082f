//! A `data_post` cdylib plugin: reads the body, stamps a header with its size, and
//! refuses bodies containing a phrase of `config/body_stamp.ini`.
//!
//! An example for `docs/writing-plugins.md`; it must stay small and use nothing
//! but the SDK.

use haraka_plugin_sdk::config::{self, Watched};
use haraka_plugin_sdk::{
    Connection, Hooks, Ini, NewPlugin, Outcome, PluginError, PluginInit, Register, export_plugin,
    tracing,
};

/// The config file.
pub const CONFIG: &str = "body_stamp.ini";

pub struct BodyStamp {
    name: String,
    config: Watched<Ini>,
}

/// Lines (CRLF-terminated, plus a last unterminated one) and bytes of a body.
pub fn stats(body: &[u8]) -> (usize, usize) {
    let mut lines = body.windows(2).filter(|w| w == b"\r\n").count();
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        lines += 1;
    }
    (lines, body.len())
}

/// The first configured phrase the body contains (ASCII case-insensitive).
fn forbidden(ini: &Ini, body: &[u8]) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let phrases = ini.section("reject")?.array("phrase")?;
    phrases
        .iter()
        .map(|p| p.value.clone().unwrap_or_default().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .find(|p| lower.windows(p.len()).any(|w| w == p.as_bytes()))
}

impl NewPlugin for BodyStamp {
    fn new(init: &PluginInit<'_>) -> Result<BodyStamp, PluginError> {
        Ok(BodyStamp {
            name: init.name.to_owned(),
            config: config::ini(init.config, CONFIG)?,
        })
    }
}

impl Register for BodyStamp {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.data_post(Self::stamp);
    }
}

impl BodyStamp {
    fn stamp(&self, conn: &mut Connection) -> Outcome {
        let Some(txn) = conn.transaction.as_mut() else {
            return Outcome::cont();
        };
        let ini = self.config.get();
        if let Some(phrase) = forbidden(&ini, &txn.message.body) {
            txn.results
                .add(&self.name, "fail", format!("phrase: {phrase}"));
            tracing::warn!("refused {}: body contains {phrase:?}", txn.uuid);
            return Outcome::deny("Message content rejected");
        }
        let (lines, bytes) = stats(&txn.message.body);
        let header = ini.get("main", "header").unwrap_or("X-Body-Stats");
        txn.message.remove_header(header);
        txn.message
            .add_header(header, &format!("lines={lines}; bytes={bytes}"));
        txn.results.add(&self.name, "pass", "stamped");
        Outcome::cont()
    }
}

export_plugin!(BodyStamp);

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::stats;

    #[test]
    fn counts_lines_and_bytes() {
        let table: [(&[u8], (usize, usize)); 4] = [
            (b"", (0, 0)),
            (b"one\r\n", (1, 5)),
            (b"one\r\ntwo\r\n", (2, 10)),
            (b"one\r\ntail", (2, 9)),
        ];
        for (body, want) in table {
            assert_eq!(stats(body), want, "{body:?}");
        }
    }
}
