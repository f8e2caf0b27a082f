//! The outbound engine's start-up, and the queue commands (`--qlist`, ...).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use haraka_config::ConfigDir;
use haraka_outbound::Outbound;
use haraka_plugin_api::OutboundQueue;
use haraka_tls::OutboundTls;

use crate::app::App;

/// A running outbound engine.
#[derive(Clone)]
pub struct OutboundHandle {
    engine: Outbound,
}

impl OutboundHandle {
    /// The engine as the server's `OutboundQueue`.
    pub fn queue(&self) -> Arc<dyn OutboundQueue> {
        Arc::new(self.engine.clone())
    }

    /// SIGHUP: every deferred delivery is due now.
    pub fn retry_now(&self) {
        self.engine.retry_all_now();
    }

    pub async fn shutdown(&self) {
        self.engine.shutdown();
    }
}

/// Start Haraka's outbound engine for `app`: relayed mail that no `queue_outbound`
/// plugin took is queued durably in `ROOT/queue` (or `queue_dir`) and delivered by MX.
pub async fn start_outbound(app: &App) -> anyhow::Result<Option<OutboundHandle>> {
    let tls = OutboundTls::load(&app.config).unwrap_or_else(|e| {
        tracing::warn!("outbound TLS disabled: {e}");
        OutboundTls::default()
    });
    let hooks = Arc::new(app.pipeline.clone());
    let (engine, warnings) =
        Outbound::from_config_dir(&app.config, &app.settings.session.me, hooks, tls)
            .context("cannot start the outbound queue")?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    engine
        .start()
        .await
        .context("cannot recover the outbound queue")?;
    Ok(Some(OutboundHandle { engine }))
}

fn queue_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let cfg =
        ConfigDir::open_with(root, crate::registry::LAYOUTS).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(haraka_queue::resolve_queue_dir(
        cfg.root(),
        cfg.value("queue_dir").as_deref(),
    ))
}

/// `--qlist`.
pub fn list(root: &Path) -> anyhow::Result<ExitCode> {
    for line in haraka_queue::cli::qlist(&queue_dir(root)?)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--qstat`.
pub fn stat(root: &Path) -> anyhow::Result<ExitCode> {
    println!("{}", haraka_queue::cli::qstat(&queue_dir(root)?)?);
    Ok(ExitCode::SUCCESS)
}

/// `--qempty`.
pub fn empty(root: &Path) -> anyhow::Result<ExitCode> {
    let n = haraka_queue::cli::qempty(&queue_dir(root)?)?;
    println!(
        "removed {n} queued deliver{}",
        if n == 1 { "y" } else { "ies" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `--qretry`: for a stopped server (a running one: SIGHUP).
pub fn retry(root: &Path) -> anyhow::Result<ExitCode> {
    let n = haraka_queue::cli::retry_now(&queue_dir(root)?, None)?;
    println!(
        "{n} queued deliver{} due now",
        if n == 1 { "y is" } else { "ies are" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `--qshow ID`.
pub fn show(root: &Path, id: &str) -> anyhow::Result<ExitCode> {
    println!("{}", haraka_queue::cli::inspect(&queue_dir(root)?, id)?);
    Ok(ExitCode::SUCCESS)
}
