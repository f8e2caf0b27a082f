//! Backend connections prepared while the client is still sending its message.
//!
//! Once a recipient is accepted (the `rcpt_ok` hook) a task connects to the
//! backend and does the greeting, EHLO, STARTTLS, XCLIENT and AUTH, so that at
//! queue time only MAIL, RCPT, DATA and the message remain: the client's wait
//! after its final dot does not include the backend's handshake. Only accepted
//! recipients start one, so refused mail never costs a backend connection. At queue time the plan is worked out again
//! from the transaction as it is then (a `data_post` plugin may have changed
//! it); the prepared connection is used only when both plans are identical and
//! it is still open, otherwise it is closed and a fresh one is opened at queue time.
//! Further recipients of the transaction keep the connection being prepared.
//! A connection prepared for a transaction that never reaches the queue is
//! closed when the next transaction of the client prepares its own, or when the
//! client disconnects.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use haraka_client::Error;
use tokio::task::JoinHandle;

use crate::forward::{Connector, Plan, Ready};

struct Prepared {
    conn: String,
    plan: Plan,
    task: JoinHandle<Result<Ready, Error>>,
}

/// Most connections waiting prepared at once. Each holds a backend connection
/// (and, on Postfix, an smtpd process) while its client is still sending, so slow
/// clients must not tie up the backend: beyond this, transactions connect at
/// queue time, as Haraka does.
pub(crate) const MAX_PREPARED: usize = 64;

/// The prepared connections, by transaction uuid.
#[derive(Default)]
pub(crate) struct Warmup {
    slots: Mutex<HashMap<String, Prepared>>,
}

impl Warmup {
    /// Start preparing a connection for transaction `txn` of connection `conn`,
    /// unless one is already being prepared for it with the same plan.
    pub fn start(&self, conn: &str, txn: &str, plan: Plan, connector: Connector) {
        {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if slots.get(txn).is_some_and(|p| p.plan == plan) {
                return;
            }
            let own = slots.values().filter(|p| p.conn == conn).count();
            if slots.len() - own >= MAX_PREPARED {
                return;
            }
        }
        let task_plan = plan.clone();
        let task = tokio::spawn(async move { connector.connect(&task_plan).await });
        let prepared = Prepared {
            conn: conn.to_owned(),
            plan,
            task,
        };
        let stale = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            // Anything prepared for this client so far belongs to a transaction
            // that ended, or to this one with another plan.
            let stale = take_connection(&mut slots, conn);
            slots.insert(txn.to_owned(), prepared);
            stale
        };
        stale.into_iter().for_each(discard);
    }

    /// The connection prepared for `txn`, if it was prepared for `plan`: `None`
    /// when there is none or it does not fit (connect afresh), else the outcome
    /// of preparing it (a failure to connect is the backend's answer).
    pub async fn take(&self, txn: &str, plan: &Plan) -> Option<Result<Ready, Error>> {
        let prepared = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(txn)?;
        if prepared.plan != *plan {
            tracing::debug!(uuid = %txn, "smtp_forward: transaction changed since DATA; connecting afresh");
            discard(prepared);
            return None;
        }
        match prepared.task.await {
            Ok(Ok((lease, mut client))) => {
                if client.is_stale().await {
                    tracing::debug!(uuid = %txn, "smtp_forward: prepared connection closed meanwhile; connecting afresh");
                    return None;
                }
                Some(Ok((lease, client)))
            }
            Ok(Err(e)) => Some(Err(e)),
            // The task panicked or was cancelled: try the ordinary way.
            Err(_) => None,
        }
    }

    /// Close what was prepared for connection `conn` (it ended).
    pub fn forget_connection(&self, conn: &str) {
        let stale = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            take_connection(&mut slots, conn)
        };
        stale.into_iter().for_each(discard);
    }

    /// Prepared connections not yet taken (for tests).
    pub fn pending(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn take_connection(slots: &mut HashMap<String, Prepared>, conn: &str) -> Vec<Prepared> {
    let txns: Vec<String> = slots
        .iter()
        .filter(|(_, p)| p.conn == conn)
        .map(|(k, _)| k.clone())
        .collect();
    txns.into_iter().filter_map(|k| slots.remove(&k)).collect()
}

/// Close a prepared connection politely once it is ready (or abandon the attempt).
fn discard(p: Prepared) {
    tokio::spawn(async move {
        if let Ok(Ok((lease, client))) = p.task.await {
            drop(lease);
            client.quit().await;
        }
    });
}
