//! Haraka's `rcpt_to.in_host_list` for haraka-rs.
//!
//! Owns the decision "is this recipient's domain one of ours": `config/host_list`
//! (whole domains, case-insensitive; Haraka's shipped default `haraka.local`),
//! `config/host_list_regex` (anchored, case-insensitive), the sender check of
//! `host_list.anti_spoof`, and the rule that relaying clients sending from a local
//! domain may send anywhere. The lists are re-read when their files change.
//!
//! It only ever accepts (OK) or passes (CONT) a recipient: the `550 I cannot
//! deliver mail for <addr>` for everything else is the core's default. It must never
//! accept a recipient because of a sub-domain, a prefix, or anything but the whole
//! domain.

pub mod lists;

use std::sync::Arc;
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Watched};
use haraka_plugin_api::{
    Address, Connection, Hooks, Outcome, Plugin, PluginError, PluginInit, Register,
};

use crate::lists::HostLists;

/// The transaction note set when the sender's domain is local.
pub const LOCAL_SENDER: &str = "local_sender";

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        InHostList::new(init.name, init.config)?,
    ))
}

/// The rcpt_to.in_host_list plugin.
pub struct InHostList {
    name: String,
    lists: Watched<HostLists>,
}

impl InHostList {
    /// Read the lists from `cfg`; a broken `host_list_regex` line is an error. The
    /// files are re-read when they change.
    pub fn new(name: &str, cfg: &ConfigDir) -> Result<InHostList, ConfigErrors> {
        let cfg = cfg.clone();
        Ok(InHostList {
            name: name.to_owned(),
            lists: Watched::with_paths(move || lists::load(&cfg))?,
        })
    }

    /// Look for changed files at most once per `interval` (default 1 s).
    pub fn with_reload_interval(self, interval: Duration) -> InHostList {
        InHostList {
            lists: self.lists.with_interval(interval),
            ..self
        }
    }

    /// Whether `domain` is local with the lists as they are now.
    pub fn is_local(&self, domain: &str) -> bool {
        self.lists.get().is_local(domain)
    }

    fn mail(&self, conn: &mut Connection, from: Option<&Address>) -> Outcome {
        let relaying = conn.relaying();
        let Some(txn) = conn.transaction.as_mut() else {
            return Outcome::cont();
        };
        let Some(domain) = from.and_then(|a| a.host.as_deref()) else {
            txn.results.add(&self.name, "skip", "mail_from.null");
            return Outcome::cont();
        };
        let lists = self.lists.get();
        if !lists.is_local(domain) {
            txn.results.add(&self.name, "msg", "mail_from!local");
            return Outcome::cont();
        }
        let domain = domain.to_ascii_lowercase();
        if lists.anti_spoof() && !relaying {
            txn.results.add(&self.name, "fail", "mail_from.anti_spoof");
            return Outcome::deny(format!(
                "Mail from domain '{domain}' is not allowed from your host"
            ));
        }
        txn.results.add(&self.name, "pass", "mail_from");
        txn.notes.insert(LOCAL_SENDER.to_owned(), true.into());
        Outcome::cont()
    }

    fn rcpt(&self, conn: &mut Connection, to: &Address) -> Outcome {
        let relaying = conn.relaying();
        let Some(txn) = conn.transaction.as_mut() else {
            return Outcome::cont();
        };
        // `<postmaster>` has no domain: another plugin may accept it.
        let Some(domain) = to.host.as_deref() else {
            txn.results.add(&self.name, "fail", "rcpt!domain");
            return Outcome::cont();
        };
        if self.lists.get().is_local(domain) {
            txn.results.add(&self.name, "pass", "rcpt_to");
            return Outcome::accept();
        }
        let local_sender = txn.notes.get(LOCAL_SENDER).and_then(|v| v.as_bool()) == Some(true);
        if relaying && local_sender {
            txn.results.add(&self.name, "pass", "relaying local_sender");
            return Outcome::accept();
        }
        txn.results.add(&self.name, "msg", "rcpt!local");
        Outcome::cont()
    }
}

impl Register for InHostList {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.mail(Self::mail);
        hooks.rcpt(Self::rcpt);
    }
}
