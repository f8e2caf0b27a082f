//! A recipient allow-list as a cdylib plugin: answers `OK` at the `rcpt` hook for
//! the recipients and domains of `config/rcpt_allow.ini`, and rejects the rest.
//!
//! An example for `docs/writing-plugins.md`; it must stay small and use nothing
//! but the SDK.

use haraka_plugin_sdk::config::{self, Watched};
use haraka_plugin_sdk::{
    Address, Connection, Hooks, Ini, NewPlugin, Outcome, PluginError, PluginInit, Register,
    export_plugin, tracing,
};

/// The config file, fixed like Haraka's plugins' own files.
pub const CONFIG: &str = "rcpt_allow.ini";

pub struct RcptAllow {
    name: String,
    config: Watched<Ini>,
}

/// What to answer for a recipient that is not listed.
fn rejection(ini: &Ini, rcpt: &str) -> Outcome {
    let text = ini
        .get("main", "message")
        .unwrap_or("I cannot deliver mail for {rcpt}")
        .replace("{rcpt}", rcpt);
    match ini.get("main", "reject").unwrap_or("deny") {
        "cont" => Outcome::cont(),
        "denysoft" => Outcome::deny_soft(text),
        _ => Outcome::deny(text),
    }
}

/// Whether `key` (lower-cased) is listed in `section`.
fn listed(ini: &Ini, section: &str, key: &str) -> bool {
    ini.section(section)
        .is_some_and(|s| s.entries.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)))
}

impl NewPlugin for RcptAllow {
    fn new(init: &PluginInit<'_>) -> Result<RcptAllow, PluginError> {
        Ok(RcptAllow {
            name: init.name.to_owned(),
            config: config::ini(init.config, CONFIG)?,
        })
    }
}

impl Register for RcptAllow {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.rcpt(Self::check);
    }
}

impl RcptAllow {
    fn check(&self, conn: &mut Connection, to: &Address) -> Outcome {
        let ini = self.config.get();
        let address = to.address();
        let allowed = listed(&ini, "recipients", &address)
            || to
                .host
                .as_deref()
                .is_some_and(|d| listed(&ini, "domains", d));
        let kind = if allowed { "pass" } else { "fail" };
        if let Some(t) = conn.transaction.as_mut() {
            t.results.add(&self.name, kind, address.as_str());
        }
        tracing::info!("{kind}: {address}");
        if allowed {
            Outcome::accept()
        } else {
            rejection(&ini, &to.format())
        }
    }
}

export_plugin!(RcptAllow);

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::task::{Context, Poll, Waker};

    use haraka_plugin_sdk::{
        Action, BoxFuture, ConfigDir, Hook, HookArgs, Local, Remote, Transaction, factory,
    };

    use super::*;

    fn now(mut f: BoxFuture<'_, Outcome>) -> Outcome {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(o) => o,
            Poll::Pending => panic!("the hook should answer at once"),
        }
    }

    /// The same crate linked in as a built-in, through `factory`.
    #[test]
    fn allows_listed_recipients_and_domains() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("config")).unwrap();
        std::fs::write(
            root.path().join("config").join(CONFIG),
            "[main]\nreject=denysoft\n[recipients]\nalice@example.com\n[domains]\nexample.org\n",
        )
        .unwrap();
        let dir = ConfigDir::open(root.path()).unwrap();
        let plugin = factory::<RcptAllow>(&PluginInit {
            name: "rcpt_allow",
            config: &dir,
        })
        .unwrap();
        let mut conn = Connection::new(
            "c".into(),
            Remote::new("127.0.0.1".parse().unwrap(), 1),
            Local {
                ip: "127.0.0.1".parse().unwrap(),
                port: 25,
                host: "mx".into(),
            },
        );
        conn.transaction = Some(Transaction::new("c.1".into()));
        let table = [
            ("alice@example.com", Action::Accept),
            ("ALICE@Example.COM", Action::Accept),
            ("anyone@example.org", Action::Accept),
            ("bob@example.com", Action::DenySoft),
        ];
        for (rcpt, want) in table {
            let args = HookArgs::Rcpt {
                to: Address::parse(rcpt).unwrap(),
                params: vec![],
            };
            assert_eq!(
                now(plugin.hook(Hook::Rcpt, &mut conn, &args)).action,
                want,
                "{rcpt}"
            );
        }
        let t = conn.transaction.unwrap();
        assert!(t.results.has("rcpt_allow", "fail", "bob@example.com"));
    }
}
