//! Outbound engine start-up and the queue commands (wired to haraka-outbound).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use haraka_plugin_api::OutboundQueue;

use crate::app::App;

/// A running outbound engine.
#[derive(Clone)]
pub struct OutboundHandle {
    queue: Arc<dyn OutboundQueue>,
}

impl OutboundHandle {
    pub fn queue(&self) -> Arc<dyn OutboundQueue> {
        self.queue.clone()
    }
    pub fn retry_now(&self) {}
    pub async fn shutdown(&self) {}
}

pub async fn start_outbound(_app: &App) -> anyhow::Result<Option<OutboundHandle>> {
    Ok(None)
}

pub fn list(_root: &Path) -> anyhow::Result<ExitCode> {
    anyhow::bail!("queue commands are wired with the outbound engine")
}
pub fn stat(root: &Path) -> anyhow::Result<ExitCode> {
    list(root)
}
pub fn empty(root: &Path) -> anyhow::Result<ExitCode> {
    list(root)
}
pub fn retry(root: &Path) -> anyhow::Result<ExitCode> {
    list(root)
}
pub fn show(root: &Path, _id: &str) -> anyhow::Result<ExitCode> {
    list(root)
}
